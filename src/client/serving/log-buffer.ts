/**
 * The client's recent log lines, kept in memory for logs on demand (protocol §11.4): a ring
 * bounded both in lines and in bytes, the oldest dropped first, each line numbered so that a
 * reader can resume after the last one it saw. `captureLogs()` makes the logger whose lines
 * land here as well as where they went before.
 */
import pino, { type Logger } from 'pino';
import { LOG_LINE_LEVELS, type LogLineLevel } from '../../protocol/logs.js';

/** One kept line: the text pino wrote (without its newline) and what filters read without parsing it. */
export interface KeptLine {
  /** 1, 2, 3… in the order written; never reused, so `after` resumes exactly. */
  seq: number;
  /** When it was kept (epoch ms): `since` compares with it, whatever timestamp format the logger uses. */
  time: number;
  level: number;
  text: string;
  bytes: number;
}

export interface LineFilter {
  /** Lowest level wanted (a number, as pino writes it). */
  level?: number;
  since?: number;
  after?: number;
  /** Only lines whose text contains this. */
  pattern?: string;
}

export class LogBuffer {
  private readonly ring: Array<KeptLine | undefined>;
  private start = 0;
  private count = 0;
  private keptBytes = 0;
  private lastSeq = 0;
  private readonly followers = new Set<(line: KeptLine) => void>();

  constructor(
    readonly maxLines: number,
    readonly maxBytes: number,
    /** `[secret, mask]` pairs replaced in every line before it is kept: no secret is ever served. */
    private readonly masks: ReadonlyArray<readonly [string, string]> = [],
  ) {
    this.ring = new Array<KeptLine | undefined>(maxLines);
  }

  get lines(): number {
    return this.count;
  }

  get bytes(): number {
    return this.keptBytes;
  }

  /** The number of the newest line (0 before any). */
  get newest(): number {
    return this.lastSeq;
  }

  /** Keeps one line as the logger wrote it; drops the oldest until both bounds hold. */
  add(level: number, written: string): void {
    let text = written.endsWith('\n') ? written.slice(0, -1) : written;
    for (const [secret, mask] of this.masks) if (text.includes(secret)) text = text.replaceAll(secret, mask);
    let bytes = Buffer.byteLength(text);
    const time = Date.now();
    if (bytes > this.maxBytes) {
      // Kept as a short line saying so: a reader learns that something was written then.
      text = JSON.stringify({ level, time, msg: `relais: a log line of ${bytes} bytes was not kept (over the ${this.maxBytes}-byte log buffer)` });
      bytes = Buffer.byteLength(text);
    }
    while (this.count > 0 && (this.count >= this.maxLines || this.keptBytes + bytes > this.maxBytes)) this.dropOldest();
    const line: KeptLine = { seq: ++this.lastSeq, time, level, text, bytes };
    this.ring[(this.start + this.count) % this.maxLines] = line;
    this.count += 1;
    this.keptBytes += bytes;
    for (const follower of this.followers) follower(line);
  }

  private dropOldest(): void {
    const oldest = this.ring[this.start]!;
    this.ring[this.start] = undefined;
    this.start = (this.start + 1) % this.maxLines;
    this.count -= 1;
    this.keptBytes -= oldest.bytes;
  }

  /**
   * The newest lines that pass `filter`, at most `max` of them and `maxBytes` of text, oldest
   * first. `truncated` tells that the byte budget, not `max` or the buffer, stopped it.
   */
  select(filter: LineFilter, max: number, maxBytes: number): { lines: KeptLine[]; truncated: boolean } {
    const picked: KeptLine[] = [];
    let bytes = 0;
    for (let i = this.count - 1; i >= 0 && picked.length < max; i--) {
      const line = this.ring[(this.start + i) % this.maxLines]!;
      // Lines are in the order written: the first too old ends the search.
      if (filter.after !== undefined && line.seq <= filter.after) break;
      if (filter.since !== undefined && line.time < filter.since) break;
      if (!atLevel(line, filter.level) || !hasPattern(line, filter.pattern)) continue;
      if (bytes + line.bytes > maxBytes) return { lines: picked.reverse(), truncated: true };
      bytes += line.bytes + 1;
      picked.push(line);
    }
    return { lines: picked.reverse(), truncated: false };
  }

  /** Calls `follower` with each line kept from now on; returns what stops it. */
  follow(follower: (line: KeptLine) => void): () => void {
    this.followers.add(follower);
    return () => this.followers.delete(follower);
  }
}

/** Whether `line` contains `pattern` (a plain substring). */
export function hasPattern(line: KeptLine, pattern: string | undefined): boolean {
  return pattern === undefined || line.text.includes(pattern);
}

/** Whether `line` is at `level` or above (`after` and `since` are a matter of position: `select` stops at them). */
export function atLevel(line: KeptLine, level: number | undefined): boolean {
  return level === undefined || line.level >= level;
}

/**
 * A child of `base` that writes where `base` writes, at `base`'s level, and also keeps its lines
 * in `buffer` from `keepLevel` up (default: `base`'s level). A lower `keepLevel` lowers the
 * child's level: those calls then cost a serialisation each, and only the buffer gets them.
 * `base` itself is left untouched: lines logged through it directly are not kept.
 */
export function captureLogs(base: Logger, buffer: LogBuffer, keepLevel?: LogLineLevel): Logger {
  const destination = (base as unknown as Record<symbol, pino.DestinationStream | undefined>)[pino.symbols.streamSym];
  if (!destination) return base;
  const forwardLevel = base.levelVal;
  const keptFrom = keepLevel === undefined ? forwardLevel : LOG_LINE_LEVELS[keepLevel];
  const keeper = {
    // pino hands the level of each line to a stream that asks (multistream passes it on).
    [pino.symbols.needsMetadataGsym]: true as const,
    lastLevel: 0,
    write(text: string) {
      buffer.add(this.lastLevel, text);
    },
  };
  const tee = pino.multistream([
    { level: forwardLevel, stream: destination },
    { level: keptFrom, stream: keeper },
  ]) as pino.MultiStreamRes<number> & { flush?: (done: (error?: Error) => void) => void };
  // logger.flush() reaches the original destination (an asynchronous one buffers).
  tee.flush = (done) => (typeof (destination as { flush?: unknown }).flush === 'function' ? (destination as unknown as { flush(cb: typeof done): void }).flush(done) : done());
  const child = base.child({});
  (child as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] = tee;
  if (keptFrom < forwardLevel) child.level = levelName(base, keptFrom);
  return child;
}

function levelName(logger: Logger, value: number): string {
  return logger.levels.labels[value] ?? 'trace';
}
