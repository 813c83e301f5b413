/** A Chromium binary to launch, and where it was found. */
export interface FoundChromium {
	path: string;
	source: "CHROMIUM_PATH" | "system" | "@sparticuz/chromium";
}

/** The flags every launch uses, whichever Chromium it is. */
export const CHROMIUM_ARGS: string[];

/** CHROMIUM_PATH, then a system `chromium` or /usr/bin/chromium, then the one packaged in @sparticuz/chromium. */
export function findChromium(): Promise<FoundChromium>;

/** Forgets an unpacked packaged Chromium, so that the next findChromium() unpacks it again. */
export function forgetUnpacked(found: FoundChromium): void;
