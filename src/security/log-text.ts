/**
 * Text a client chose, made fit for a log line: quoted, and at most a few hundred characters
 * (a user name or a client id may be 64 KiB; logged whole at each refused CONNECT, an attack
 * wrote 43 MB of log a second). docs/security.md "What a denial looks like".
 */

/** Characters kept of a client's text in a log line. */
export const LOGGED_CHARACTERS = 128;

/** `text` as a JSON string, cut after `max` characters with the length it had. */
export function quoted(text: string, max = LOGGED_CHARACTERS): string {
  if (text.length <= max) return JSON.stringify(text);
  return `${JSON.stringify(text.slice(0, max))}…(${text.length} characters)`;
}

/** `text` as it is, cut after `max` characters with the length it had (for a URL path: printable already). */
export function clipped(text: string, max = LOGGED_CHARACTERS): string {
  return text.length <= max ? text : `${text.slice(0, max)}…(${text.length} characters)`;
}

/**
 * Lines that a flood would repeat (refusals without a check): at most one per `key` each
 * `windowMs`, the next saying how many were left out. Bounded: the oldest keys are forgotten.
 */
export class DampedLog {
  private readonly recent = new Map<string, { until: number; more: number }>();

  constructor(
    private readonly log: (line: string) => void,
    private readonly windowMs = 1000,
    private readonly keys = 1000,
  ) {}

  line(key: string, text: string): void {
    const now = Date.now();
    const recent = this.recent.get(key);
    if (recent && recent.until > now) {
      recent.more++;
      return;
    }
    this.log(recent?.more ? `${text}; ${recent.more} more the same way in the last ${this.windowMs / 1000} s` : text);
    this.recent.delete(key);
    this.recent.set(key, { until: now + this.windowMs, more: 0 });
    if (this.recent.size > this.keys) this.recent.delete(this.recent.keys().next().value!);
  }
}
