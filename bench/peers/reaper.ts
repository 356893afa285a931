/**
 * Every process the peers benchmark spawns is tracked here from the moment it is spawned
 * (not only once it is ready), so that an interruption or a crash of the benchmark ends it
 * too: `killAll()` on abort, and again synchronously when this process exits.
 */
import type { ChildProcess } from 'node:child_process';

const children = new Set<ChildProcess>();

export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export function killAll(): void {
  for (const child of children) child.kill('SIGKILL');
}

process.once('exit', killAll);
