/**
 * Runs one allowed command (docs/agent.md "Remote commands"): its own process group, no stdin, its
 * stdout and stderr read as lines and handed over as they come (`emit` is awaited before
 * reading more, so a slow bus slows the command instead of filling memory), forwarded output
 * cut at a byte limit with a marker, a bounded tail kept for the final answer, and the whole
 * group killed (SIGTERM, then SIGKILL after a grace) on time-out or abort.
 */
import { spawn } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';
import type { Readable } from 'node:stream';
import type { AllowedCommand } from './allow-list.js';

export type StreamName = 'stdout' | 'stderr';

export interface OutputLine {
  stream: StreamName;
  line: string;
}

/** What a progress step carries: the lines read since the last one, or the cut marker. */
export type OutputStep = { output: OutputLine[] } | { truncated: true; marker: string };

export interface RunLimits {
  maxOutputBytes: number;
  tailBytes: number;
  killGraceMs: number;
}

export interface RunOutcome {
  exitCode: number | null;
  signal: string | null;
  durationMs: number;
  /** Bytes the command wrote (stdout and stderr), forwarded or not. */
  outputBytes: number;
  /** The output went over `maxOutputBytes`: what followed the marker was not forwarded. */
  truncated: boolean;
  /** The last lines, at most `tailBytes` characters of them. */
  tail: OutputLine[];
  /** Why the process group was killed, when it was. */
  killed?: { reason: 'timeout' | 'cancelled'; signals: string[] };
}

/** A line longer than this (characters) is handed over in pieces: a program without newlines cannot grow a buffer. */
export const MAX_LINE_CHARS = 16 * 1024;

/** The environment a command gets: the agent's PATH and locale, nothing else (no secrets it may hold). */
const KEPT_ENVIRONMENT = ['PATH', 'LANG', 'LC_ALL', 'TZ', 'HOME'];

export function commandEnvironment(): NodeJS.ProcessEnv {
  return Object.fromEntries(KEPT_ENVIRONMENT.filter((name) => process.env[name] !== undefined).map((name) => [name, process.env[name]]));
}

export class SpawnError extends Error {
  constructor(
    message: string,
    readonly errno: string | undefined,
  ) {
    super(message);
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false; // the group is gone
  }
}

export function runProcess(
  command: AllowedCommand,
  options: { timeoutMs: number; signal: AbortSignal; limits: RunLimits; emit: (step: OutputStep) => Promise<void> },
): Promise<RunOutcome> {
  const { limits, emit } = options;
  const started = performance.now();
  const child = spawn(command.program, command.args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: commandEnvironment(), cwd: '/' });
  const outcome: RunOutcome = { exitCode: null, signal: null, durationMs: 0, outputBytes: 0, truncated: false, tail: [] };
  let forwarded = 0;
  let tailChars = 0;
  const keepInTail = (line: OutputLine) => {
    outcome.tail.push(line);
    tailChars += line.line.length;
    while (tailChars > limits.tailBytes && outcome.tail.length > 0) tailChars -= outcome.tail.shift()!.line.length;
  };

  // Lines are handed over in arrival order; while a step is being written, both pipes wait.
  const streams: Readable[] = [child.stdout!, child.stderr!];
  let sending: Promise<void> = Promise.resolve();
  let waiting = 0;
  const hand = (lines: OutputLine[]) => {
    for (const line of lines) keepInTail(line);
    if (outcome.truncated) return;
    const kept: OutputLine[] = [];
    for (const line of lines) {
      forwarded += Buffer.byteLength(line.line) + 1;
      if (forwarded > limits.maxOutputBytes) {
        outcome.truncated = true;
        break;
      }
      kept.push(line);
    }
    const steps: OutputStep[] = [];
    if (kept.length) steps.push({ output: kept });
    if (outcome.truncated) steps.push({ truncated: true, marker: `[relais: output cut after ${limits.maxOutputBytes} bytes; the rest is not forwarded]` });
    waiting += 1;
    for (const stream of streams) stream.pause();
    sending = sending
      .then(async () => {
        for (const step of steps) await emit(step);
      })
      .catch(() => {}) // a step not sent is logged where it is sent; the command goes on
      .finally(() => {
        waiting -= 1;
        if (waiting === 0) for (const stream of streams) stream.resume();
      });
  };
  const readLines = (stream: Readable, name: StreamName) => {
    const decoder = new StringDecoder('utf8');
    let partial = '';
    const split = (text: string, ending: boolean) => {
      partial += text;
      const lines: OutputLine[] = [];
      let newline: number;
      while ((newline = partial.indexOf('\n')) !== -1) {
        lines.push({ stream: name, line: partial.slice(0, newline).replace(/\r$/, '') });
        partial = partial.slice(newline + 1);
      }
      while (partial.length > MAX_LINE_CHARS) {
        lines.push({ stream: name, line: partial.slice(0, MAX_LINE_CHARS) });
        partial = partial.slice(MAX_LINE_CHARS);
      }
      if (ending && partial) lines.push({ stream: name, line: partial });
      if (lines.length) hand(lines);
    };
    stream.on('data', (chunk: Buffer) => {
      outcome.outputBytes += chunk.length;
      split(decoder.write(chunk), false);
    });
    stream.on('end', () => split(decoder.end(), true));
  };
  readLines(child.stdout!, 'stdout');
  readLines(child.stderr!, 'stderr');

  const kill = (reason: 'timeout' | 'cancelled') => {
    if (outcome.killed || child.pid === undefined) return;
    outcome.killed = { reason, signals: [] };
    if (signalGroup(child.pid, 'SIGTERM')) outcome.killed.signals.push('SIGTERM');
    // Not cleared when the leader exits: a grandchild that ignores SIGTERM still gets SIGKILL.
    const pid = child.pid;
    setTimeout(() => {
      if (signalGroup(pid, 'SIGKILL')) outcome.killed!.signals.push('SIGKILL');
    }, limits.killGraceMs).unref();
  };
  const timer = setTimeout(() => kill('timeout'), options.timeoutMs);
  const onAbort = () => kill('cancelled');
  if (options.signal.aborted) onAbort();
  else options.signal.addEventListener('abort', onAbort, { once: true });

  return new Promise<RunOutcome>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      options.signal.removeEventListener('abort', onAbort);
    };
    child.once('error', (error: NodeJS.ErrnoException) => {
      done();
      reject(new SpawnError(`cannot run ${command.program}: ${error.message}`, error.code));
    });
    // 'close': the process has exited and every holder of its pipes (its children too) has closed them.
    child.once('close', (code, signal) => {
      done();
      outcome.exitCode = code;
      outcome.signal = signal;
      outcome.durationMs = Math.round(performance.now() - started);
      void sending.then(() => resolve(outcome));
    });
  });
}
