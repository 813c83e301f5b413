/**
 * The topic's settings (retention and `max_sockets`): defaults, overlaid by
 * what `PUT /v1/topics/:topic` stored in `meta`, mirrored in memory.
 * @module
 */
import { DEFAULT_TOPIC_SETTINGS } from "../../protocol/limits.js";
import type { TopicSettings } from "../../protocol/message.js";
import type { TopicSettingsInput } from "../../protocol/schema.js";
import type { Meta } from "./meta.js";

const KEY = "settings";

export class Settings {
	#current: TopicSettings;

	constructor(private readonly meta: Meta) {
		this.#current = this.#load();
	}

	get current(): TopicSettings {
		return this.#current;
	}

	/** Stores a change; call inside a transaction. */
	change(change: TopicSettingsInput): TopicSettings {
		const next = { ...this.#current, ...change };
		this.meta.setJson(KEY, next);
		this.#current = next;
		return next;
	}

	/** Reads the stored settings back, after a rolled-back transaction. */
	reload(): void {
		this.#current = this.#load();
	}

	#load(): TopicSettings {
		return { ...DEFAULT_TOPIC_SETTINGS, ...this.meta.getJson<Partial<TopicSettings>>(KEY) };
	}
}
