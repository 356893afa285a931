/**
 * A saturated machine on demand: `startLoad()` runs N processes that each keep one core busy
 * (N = 2 × cores by default), so a suite can prove it is late, never wrong, when the CPU is
 * scarce (docs/reliability.md). Each busy process watches its stdin and ends when it closes:
 * one whose parent died (a test killed with SIGKILL) does not go on burning the machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { availableParallelism } from 'node:os';

/** Spins for 50 ms, then lets the event loop read stdin: ends when the parent goes. */
const SPIN = `
process.stdin.on('end', () => process.exit(0)).on('error', () => process.exit(0)).resume();
const spin = () => { const until = Date.now() + 50; while (Date.now() < until); setImmediate(spin); };
spin();
`;

export interface Load {
  /** How many busy processes run. */
  readonly size: number;
  readonly pids: readonly number[];
  /** Ends them (closes their stdin, then SIGKILL after 2 s) and resolves once they have exited. */
  stop(): Promise<void>;
}

/** The default number of busy processes: two per core, so every core has a queue of runnable work. */
export function defaultLoadSize(): number {
  return 2 * availableParallelism();
}

export function startLoad(size = defaultLoadSize()): Load {
  const children: ChildProcess[] = Array.from({ length: size }, () => spawn(process.execPath, ['-e', SPIN], { stdio: ['pipe', 'ignore', 'inherit'] }));
  return {
    size,
    pids: children.map((child) => child.pid!),
    async stop() {
      await Promise.all(
        children.map(async (child) => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          const exited = once(child, 'exit');
          child.stdin?.end();
          const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
          await exited;
          clearTimeout(timer);
        }),
      );
    },
  };
}
