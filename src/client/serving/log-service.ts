/**
 * Logs on demand (protocol §11.4): the built-in handler of `relais/logs/get` that every library
 * client serves on `relais/logs/get/request/<its id>`. It answers the kept lines at once, or
 * with `follow` sends each new one in a progress step until the caller cancels, its deadline
 * passes, or it has run for `lockTimeout`. A one-off answer holds nothing, so it is never
 * refused; follows share the buffer's one stream of new lines, at most MAX_LOG_FOLLOWS at once.
 */
import type { Logger } from 'pino';
import { BusyError, RelaisError } from '../../protocol/errors.js';
import { LOG_LINE_LEVELS, MAX_LOG_FOLLOWS, parseLogsRequest, type LogsAnswer, type LogsKept, type LogsRequest } from '../../protocol/logs.js';
import { atLevel, captureLogs, hasPattern, LogBuffer, type KeptLine, type LineFilter } from './log-buffer.js';
import { brokerUrls, type ResolvedLogsOptions } from '../options.js';
import type { HandlerContext } from '../types.js';

/** A follow sends what was written within this many ms in one progress step: a burst is one message, not hundreds. */
export const FOLLOW_BATCH_MS = 100;
/** Room left in an answer for the envelope and the `kept` summary (protocol §3.4 size limit). */
const ANSWER_OVERHEAD_BYTES = 2048;

/** A running follow: who asked, and until when it runs at the latest. */
interface Follow {
  requester: string;
  token: string;
  since: number;
  until: number;
}

export class LogService {
  readonly buffer: LogBuffer;
  /** The client's logger: writes where the given one does and keeps its lines in `buffer`. */
  readonly logger: Logger;
  /** The follows running, by `<requester> <token>`. */
  private readonly follows = new Map<string, Follow>();
  /** Text of the lines in one answer, at most: what fits in a message. */
  private readonly answerBytes: number;
  /** The lowest level kept, as answers report it. */
  private readonly keptLevel: string;

  constructor(
    private readonly id: string,
    base: Logger,
    private readonly settings: ResolvedLogsOptions,
    broker: string | readonly string[],
    maxMessageBytes: number,
  ) {
    this.buffer = new LogBuffer(settings.maxLines, settings.maxBytes, brokerSecrets(broker));
    this.logger = captureLogs(base, this.buffer, settings.level);
    this.keptLevel = settings.level ?? base.level;
    this.answerBytes = Math.max(1024, maxMessageBytes - ANSWER_OVERHEAD_BYTES);
  }

  /** The handler of `relais/logs/get` (protocol §11.4). Bad input is an error answer (code 2), never a crash. */
  readonly serve = (payload: unknown, ctx: HandlerContext): LogsAnswer | Promise<LogsAnswer> => {
    const request = parseLogsRequest(payload);
    // Another log than the client's own (an agent's files): its server has its own limits, not this lock.
    if (request.source !== undefined) {
      if (!this.settings.sources) throw new RelaisError('NO_SUCH_LOG', `${this.id} serves only its own log lines: it has no log source ${request.source}`, { details: { reason: 'unknown-source' } });
      return this.settings.sources.serve({ ...request, source: request.source }, ctx);
    }
    // Answered in this turn from the buffer: nothing is held, so nothing waits for it.
    if (!request.follow) return this.answer(request);
    const key = this.admitFollow(ctx);
    return this.follow(request, ctx).finally(() => this.follows.delete(key));
  };

  /** Counts `ctx`'s follow in, or throws `BusyError` naming the follows that run (protocol §11.4). */
  private admitFollow(ctx: HandlerContext): string {
    const now = Date.now();
    if (this.follows.size >= MAX_LOG_FOLLOWS) {
      const running = [...this.follows.values()];
      const until = Math.min(...running.map((follow) => follow.until));
      throw new BusyError(
        `the logs of ${this.id} are followed by ${running.length} readers already (${[...new Set(running.map((follow) => follow.requester))].join(', ')}); ` +
          `at most ${MAX_LOG_FOLLOWS} follows at once: try again when one ends, at the latest in ${Math.max(0, until - now)} ms (a one-off retrieval is served meanwhile)`,
        { details: { followers: running, until } },
      );
    }
    const key = `${ctx.source} ${ctx.token}`;
    this.follows.set(key, { requester: ctx.source, token: ctx.token, since: now, until: now + this.settings.lockTimeout });
    return key;
  }

  private answer(request: LogsRequest): LogsAnswer {
    const { lines, truncated } = this.buffer.select(filterOf(request), request.lines, this.answerBytes);
    return { lines: lines.map(parsed), next: lines.at(-1)?.seq ?? request.after ?? this.buffer.newest, kept: this.kept(), ...(truncated && { truncated: true as const }) };
  }

  /**
   * Sends the backlog, then each new matching line in progress steps. Ends when the caller
   * cancels or its deadline passes (ctx.signal: the error answer says which), or after
   * `lockTimeout`: the final answer then says `ended: 'lock-timeout'`, and the caller may ask
   * again with `after: next`. So a caller that vanished holds its follow no longer than that.
   */
  private follow(request: LogsRequest, ctx: HandlerContext): Promise<LogsAnswer> {
    const filter = filterOf(request);
    const backlog = this.buffer.select(filter, request.lines, this.answerBytes);
    let next = backlog.lines.at(-1)?.seq ?? request.after ?? this.buffer.newest;
    if (backlog.lines.length > 0) ctx.progress(undefined, { lines: backlog.lines.map(parsed), next });
    let batch: KeptLine[] = [];
    let batchBytes = 0;
    let batchTimer: NodeJS.Timeout | undefined;
    const flush = () => {
      clearTimeout(batchTimer);
      batchTimer = undefined;
      if (batch.length === 0) return;
      next = batch.at(-1)!.seq;
      const lines = batch.map(parsed);
      batch = [];
      batchBytes = 0;
      ctx.progress(undefined, { lines, next });
    };
    return new Promise<LogsAnswer>((resolve, reject) => {
      const stopFollowing = this.buffer.follow((line) => {
        if (!atLevel(line, filter.level) || !hasPattern(line, filter.pattern)) return;
        // A batch over the message budget goes at once, before this line joins the next one.
        if (batchBytes + line.bytes > this.answerBytes) flush();
        batch.push(line);
        batchBytes += line.bytes + 1;
        batchTimer ??= setTimeout(flush, FOLLOW_BATCH_MS);
      });
      const end = (settle: () => void) => {
        stopFollowing();
        clearTimeout(batchTimer);
        clearTimeout(lockTimer);
        ctx.signal.removeEventListener('abort', onAbort);
        settle();
      };
      const onAbort = () => end(() => reject(ctx.signal.reason));
      const lockTimer = setTimeout(() => {
        const rest = batch.map(parsed);
        if (batch.length > 0) next = batch.at(-1)!.seq;
        end(() => resolve({ lines: rest, next, kept: this.kept(), ended: 'lock-timeout' }));
      }, this.settings.lockTimeout);
      if (ctx.signal.aborted) return onAbort();
      ctx.signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private kept(): LogsKept {
    return { level: this.keptLevel, lines: this.buffer.lines, bytes: this.buffer.bytes, maxLines: this.buffer.maxLines, maxBytes: this.buffer.maxBytes };
  }
}

function filterOf(request: LogsRequest): LineFilter {
  return {
    ...(request.level !== undefined && { level: LOG_LINE_LEVELS[request.level] }),
    ...(request.since !== undefined && { since: request.since }),
    ...(request.after !== undefined && { after: request.after }),
    ...(request.pattern !== undefined && { pattern: request.pattern }),
  };
}

/** A kept line as pino wrote it, parsed; one that is not JSON (a custom `streamWrite` hook) comes as its text. */
function parsed(line: KeptLine): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(line.text);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // falls through
  }
  return { level: line.level, time: line.time, msg: line.text };
}

/**
 * What of the broker URL must never be served (protocol §11.4): its password, as written and
 * decoded, between `:` and `@` where URLs put it, and its query (a WebSocket token). The
 * library logs the URL through `redactBroker` already; this also covers text it does not
 * control (an error message quoting the URL).
 */
function brokerSecrets(broker: string | readonly string[]): Array<readonly [string, string]> {
  return brokerUrls(broker).flatMap(urlSecrets);
}

function urlSecrets(broker: string): Array<readonly [string, string]> {
  let url: URL;
  try {
    url = new URL(broker);
  } catch {
    return [];
  }
  const masks: Array<readonly [string, string]> = [];
  if (url.password) {
    for (const password of new Set([url.password, decodeURIComponent(url.password)])) masks.push([`:${password}@`, ':***@']);
  }
  if (url.search.length > 1) masks.push([url.search, '?***']);
  return masks;
}
