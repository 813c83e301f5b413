#!/usr/bin/env node
/** The `tidings` executable (package.json `bin`). */
import { run } from "./main.js";

process.exitCode = await run(process.argv.slice(2));
