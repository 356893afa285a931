/** `npm run soak -- [--minutes N] [--seed S] …`: the options and their defaults, in one place. */
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';

export interface SoakOptions {
  /** Length of the fault phase. */
  minutes: number;
  seed: number;
  handlers: number;
  requesters: number;
  /** Requests each requester keeps in flight. */
  concurrency: number;
  /** Workload before the first fault (then the resources are sampled as the baseline). */
  warmupSeconds: number;
  /** Workload after the last fault healed, before it stops and the resources are sampled again. */
  recoverySeconds: number;
  historyDiskMb: number;
  /** Where the run folder goes (journals, logs, report.json). */
  out: string;
  /** Keep the run folder when the run passes (a failing run always keeps it). */
  keep: boolean;
  /** Fail on every broken invariant, also those known to need other work first. */
  strict: boolean;
}

export const SOAK_DEFAULTS = {
  minutes: 3,
  handlers: 3,
  requesters: 2,
  concurrency: 3,
  warmupSeconds: 15,
  recoverySeconds: 20,
  historyDiskMb: 256,
} as const;

const USAGE = `usage: npm run soak -- [--minutes N] [--seed S] [--handlers N] [--requesters N] [--concurrency N]
       [--warmup-seconds N] [--recovery-seconds N] [--history-disk-mb N] [--out DIR] [--keep] [--strict]`;

export function parseSoakOptions(argv: string[], tmpdir: string): SoakOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      minutes: { type: 'string' },
      seed: { type: 'string' },
      handlers: { type: 'string' },
      requesters: { type: 'string' },
      concurrency: { type: 'string' },
      'warmup-seconds': { type: 'string' },
      'recovery-seconds': { type: 'string' },
      'history-disk-mb': { type: 'string' },
      out: { type: 'string' },
      keep: { type: 'boolean', default: false },
      strict: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const number = (text: string | undefined, fallback: number, flag: string, integer = true) => {
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isFinite(value) || value < 0 || (integer && !Number.isInteger(value))) throw new Error(`--${flag} must be a ${integer ? 'whole ' : ''}number ≥ 0, got ${text}\n${USAGE}`);
    return value;
  };
  return {
    minutes: number(values.minutes, SOAK_DEFAULTS.minutes, 'minutes', false),
    seed: number(values.seed, randomInt(1, 2 ** 31), 'seed'),
    handlers: Math.max(1, number(values.handlers, SOAK_DEFAULTS.handlers, 'handlers')),
    requesters: Math.max(1, number(values.requesters, SOAK_DEFAULTS.requesters, 'requesters')),
    concurrency: Math.max(1, number(values.concurrency, SOAK_DEFAULTS.concurrency, 'concurrency')),
    warmupSeconds: number(values['warmup-seconds'], SOAK_DEFAULTS.warmupSeconds, 'warmup-seconds'),
    recoverySeconds: number(values['recovery-seconds'], SOAK_DEFAULTS.recoverySeconds, 'recovery-seconds'),
    historyDiskMb: Math.max(16, number(values['history-disk-mb'], SOAK_DEFAULTS.historyDiskMb, 'history-disk-mb')),
    out: values.out ?? tmpdir,
    keep: values.keep,
    strict: values.strict,
  };
}

/** The command that replays a run. */
export function replayCommand(options: SoakOptions): string {
  return `npm run soak -- --minutes ${options.minutes} --seed ${options.seed}`;
}
