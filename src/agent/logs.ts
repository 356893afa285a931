/**
 * Logs from every host (docs/agent.md "Logs"): the agent serves, on the
 * same `relais/logs/get` as every client (protocol §11.4), the log files its config names and
 * the system journal, chosen by the request's `source`; without one, its own lines as any
 * client. Only configured files: a requester names a source, never a path.
 */
import { execFileSync, spawn } from 'node:child_process';
import type { Logger } from 'pino';
import type { HandlerContext, LogSources } from '../client/index.js';
import { BusyError, RelaisError } from '../protocol/errors.js';
import { LOG_LINE_LEVELS, MAX_LOG_LINES, type LogsAnswer, type LogsRequest } from '../protocol/logs.js';
import type { LogsConfig } from './config.js';
import { followFile, tailLines, type FileLine } from './log-files.js';

export const JOURNAL_SOURCE = 'journal';
/** Text of the lines in one answer or progress step, at most: well under the message limit (protocol §3.4). */
const ANSWER_BYTES = 512 * 1024;

type Line = Record<string, unknown>;

export interface AgentLogSources extends LogSources {
  names(): string[];
  close(): void;
}

export function agentLogSources(config: LogsConfig, logger: Logger): AgentLogSources {
  const journal = config.journal && journalctlPath();
  let following = 0;
  const stops = new Set<() => void>();

  const serve = async (request: LogsRequest & { source: string }, ctx: HandlerContext): Promise<LogsAnswer> => {
    const keep = lineFilter(request);
    if (request.source === JOURNAL_SOURCE && config.journal) {
      if (!journal) return { lines: [], next: 0, kept: kept(0), unavailable: 'journalctl is not installed on this host' };
      return serveJournal(journal, request, keep, ctx);
    }
    const file = config.files[request.source];
    if (file === undefined) {
      const names = [...Object.keys(config.files), ...(config.journal ? [JOURNAL_SOURCE] : [])];
      throw new RelaisError('NO_SUCH_LOG', `no log source ${request.source} on this agent (sources: ${names.join(', ') || 'none'})`, { details: { reason: 'unknown-source', sources: names } });
    }
    const tail = await tailLines(file, request.lines, (text) => keep(parsedLine(text)), config.maxScanBytes, request.after).catch((error: Error) => {
      throw new RelaisError('LOG_UNREADABLE', `log source ${request.source} cannot be read: ${error.message}`, { details: { reason: 'unreadable' } });
    });
    const { lines, truncated } = withinBudget(tail.lines);
    const answer: LogsAnswer = { lines: lines.map((line) => parsedLine(line.text)), next: tail.end, kept: kept(tail.size), ...((truncated || tail.truncated) && { truncated: true as const }) };
    if (!request.follow) return answer;
    if (following >= config.maxFollows) throw new BusyError(`this agent follows ${config.maxFollows} logs already (services.logs.maxFollows)`);
    following += 1;
    if (answer.lines.length > 0) ctx.progress(undefined, { lines: answer.lines, next: answer.next });
    return new Promise<LogsAnswer>((_, reject) => {
      const send = (sent: FileLine[]) => {
        const picked = sent.map((line) => ({ line: parsedLine(line.text), end: line.end })).filter(({ line }) => keep(line));
        if (picked.length === 0) return;
        ctx.progress(undefined, { lines: picked.map(({ line }) => line), next: picked.at(-1)!.end });
        return ctx.drained();
      };
      const stop = followFile(file, { position: tail.end, ino: tail.ino }, send, (why) => ctx.progress(undefined, { lines: [{ level: LOG_LINE_LEVELS.warn, time: Date.now(), msg: `relais: ${request.source} was ${why}; reading it from its start` }], next: 0 }));
      const end = () => {
        stop();
        stops.delete(end);
        following -= 1;
        reject(ctx.signal.reason ?? new Error('the agent is closing'));
      };
      stops.add(end);
      if (ctx.signal.aborted) return end();
      ctx.signal.addEventListener('abort', end, { once: true });
    });
  };

  const kept = (bytes: number) => ({ level: 'trace', lines: 0, bytes, maxLines: MAX_LOG_LINES, maxBytes: config.maxScanBytes });

  /** `journalctl -o json`: the newest lines, or with follow each new one until the request ends. */
  const serveJournal = (program: string, request: LogsRequest, keep: (line: Line) => boolean, ctx: HandlerContext): Promise<LogsAnswer> =>
    new Promise((resolve, reject) => {
      const args = ['-o', 'json', '--no-pager', '-n', String(request.lines), ...(request.follow ? ['-f'] : [])];
      const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'ignore'] });
      const lines: Line[] = [];
      let buffered = '';
      child.stdout.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('utf8');
        const complete = buffered.split('\n');
        buffered = complete.pop()!.slice(0, 1024 * 1024);
        const picked = complete.map(journalLine).filter((line): line is Line => line !== undefined && keep(line));
        if (!request.follow) return void lines.push(...picked);
        if (picked.length === 0) return;
        ctx.progress(undefined, { lines: picked, next: 0 });
        // journalctl waits (its pipe fills) while the lines sent are not yet written out.
        child.stdout.pause();
        void ctx.drained().then(() => child.stdout.resume());
      });
      const onAbort = () => child.kill('SIGTERM');
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      child.on('error', (error) => reject(new RelaisError('LOG_UNREADABLE', `journalctl failed: ${error.message}`)));
      child.on('close', () => {
        ctx.signal.removeEventListener('abort', onAbort);
        if (ctx.signal.aborted) return reject(ctx.signal.reason);
        resolve({ lines: lines.slice(-request.lines), next: 0, kept: kept(0) });
      });
    });

  logger.info({ files: Object.keys(config.files), journal: config.journal ? (journal ? 'available' : 'unavailable: no journalctl') : 'off' }, 'log sources');
  return {
    serve,
    names: () => [...Object.keys(config.files), ...(config.journal ? [JOURNAL_SOURCE] : [])],
    close: () => {
      for (const stop of [...stops]) stop();
    },
  };
}

/** A file's line as answers carry it: a JSON object line (pino) as it is, any other as `{ msg }`. */
function parsedLine(text: string): Line {
  if (text.startsWith('{')) {
    try {
      const value: unknown = JSON.parse(text);
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Line;
    } catch {
      // falls through: a text line
    }
  }
  return { msg: text };
}

/** Level (a line without a numeric level passes only when no level is asked) and pattern (a plain substring of the line's text). */
function lineFilter(request: LogsRequest): (line: Line) => boolean {
  const level = request.level === undefined ? undefined : LOG_LINE_LEVELS[request.level];
  return (line) => {
    if (level !== undefined && !(typeof line.level === 'number' && line.level >= level)) return false;
    return request.pattern === undefined || (typeof line.msg === 'string' && line.msg.includes(request.pattern)) || JSON.stringify(line).includes(request.pattern);
  };
}

function withinBudget(lines: FileLine[]): { lines: FileLine[]; truncated: boolean } {
  let bytes = 0;
  for (let index = lines.length - 1; index >= 0; index -= 1) {
    bytes += Buffer.byteLength(lines[index]!.text) + 1;
    if (bytes > ANSWER_BYTES) return { lines: lines.slice(index + 1), truncated: true };
  }
  return { lines, truncated: false };
}

/** syslog priorities (0 emerg … 7 debug) as pino levels. */
function journalLine(text: string): Line | undefined {
  try {
    const entry = JSON.parse(text) as Record<string, string>;
    const priority = Number(entry.PRIORITY ?? 6);
    const level = priority <= 2 ? 60 : priority === 3 ? 50 : priority === 4 ? 40 : priority <= 6 ? 30 : 20;
    return { level, time: Math.floor(Number(entry.__REALTIME_TIMESTAMP ?? 0) / 1000), msg: String(entry.MESSAGE ?? ''), ...(entry._SYSTEMD_UNIT && { unit: entry._SYSTEMD_UNIT }) };
  } catch {
    return undefined;
  }
}

function journalctlPath(): string | undefined {
  try {
    return execFileSync('which', ['journalctl'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || undefined;
  } catch {
    return undefined;
  }
}
