/**
 * How log lines look, for every process that writes them (the CLI's commands and the router's
 * worker thread alike): readable lines for a person at a terminal, pino's JSON lines for a
 * program reading a pipe (a log collector, journald, `jq`). Which one a command uses is the
 * CLI's choice (src/cli/log-lines.ts); the lines themselves are made here.
 */
import pino from 'pino';

export const LOG_FORMATS = ['readable', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/**
 * Where a logger writes: standard error (fd 2), synchronously so that the last lines before an
 * exit are not lost, as JSON or as readable lines. Written with the file descriptor, not
 * `process.stderr`: it works the same in a worker thread (the router of `relais start`).
 */
export function logDestination(format: LogFormat): pino.DestinationStream {
  const out = pino.destination({ fd: 2, sync: true });
  if (format === 'json') return out;
  return {
    write(chunk: string) {
      for (const line of chunk.split('\n')) if (line) out.write(`${readableLogLine(line, { time: true })}\n`);
    },
  };
}

/** A logger for a command that runs until stopped: `level` unless RELAIS_LOG_LEVEL says otherwise. */
export function commandLogger(level: string, name: string, format: LogFormat): pino.Logger {
  return pino({ name, level: process.env.RELAIS_LOG_LEVEL ?? level }, logDestination(format));
}

/**
 * One pino JSON line as a person reads it, with the error's text after the message:
 * `relais: warn: handler failed: disk full (action=demo/install token=Ab3x.0)`, and with `time`
 * `2026-12-01 01:38:20.511 WARN  relais-router: history: … (…)`. A line that is not JSON is
 * returned as it is. Remote text is made printable: it must not forge lines or drive the terminal.
 */
export function readableLogLine(line: string, format: { time?: boolean } = {}): string {
  let record: Record<string, unknown>;
  try {
    const value: unknown = JSON.parse(line);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return line;
    record = value as Record<string, unknown>;
  } catch {
    return line;
  }
  const { level, msg, time, pid: _pid, hostname: _hostname, name, err, ...details } = record;
  const label = typeof level === 'number' ? (pino.levels.labels[level] ?? String(level)) : String(level);
  const error = errorText(err);
  const text = `${printable(String(msg ?? ''))}${error === undefined ? '' : `: ${printable(error)}`}`;
  const extra = Object.entries(details)
    .map(([key, value]) => `${printable(key)}=${typeof value === 'string' ? printable(value) : JSON.stringify(value)}`)
    .join(' ');
  const rest = extra ? ` (${extra})` : '';
  if (!format.time) return `relais: ${label}: ${text}${rest}`;
  const when = typeof time === 'number' ? new Date(time).toISOString().replace('T', ' ').replace('Z', '') : '';
  const who = typeof name === 'string' ? `${printable(name)}: ` : '';
  return `${when} ${label.toUpperCase().padEnd(5)} ${who}${text}${rest}`;
}

/** The text of a logged error: a string as given, pino's serialised Error (`{type, message, stack}`) by its message. */
function errorText(err: unknown): string | undefined {
  if (err === undefined || err === null) return undefined;
  if (typeof err === 'string') return err;
  if (typeof err === 'object' && typeof (err as { message?: unknown }).message === 'string') return (err as { message: string }).message;
  return JSON.stringify(err);
}

/** Text as is, or JSON-quoted when it holds control characters: remote input must not forge lines or drive the terminal. */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f]/.test(text) ? JSON.stringify(text) : text;
}
