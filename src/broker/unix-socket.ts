/** The Unix socket listener's file (docs/security.md "Listeners": the internal interface, for this user or one group). */
import fs from 'node:fs';
import net from 'node:net';
import { isMainThread } from 'node:worker_threads';
import { BrokerStartError, listen } from './listen.js';

/**
 * Listens on a Unix socket created with `mode` (docs/security.md "Listeners": the internal
 * interface is for this user, or a group): the umask is narrowed while the file is made, so it is never wider, even
 * for an instant. Worker threads cannot change the umask: there the mode is set just after.
 */
export async function listenPrivately(server: net.Server, socketPath: string, mode: number, group: string | number | undefined): Promise<void> {
  const previous = isMainThread ? process.umask(0o777 & ~mode) : undefined;
  try {
    await listen(server, { path: socketPath }, `Unix socket ${socketPath}`, 'Unix socket');
  } finally {
    if (previous !== undefined) process.umask(previous);
  }
  try {
    if (group !== undefined) fs.chownSync(socketPath, -1, groupId(group));
    fs.chmodSync(socketPath, mode);
  } catch (error) {
    server.close();
    throw new BrokerStartError(`cannot give the Unix socket ${socketPath} mode ${mode.toString(8)}${group !== undefined ? ` and group ${group}` : ''}: ${(error as Error).message}`, { cause: error });
  }
}

/** A group name (read from /etc/group) or number, as a gid. */
function groupId(group: string | number): number {
  if (typeof group === 'number' || /^\d+$/.test(group)) return Number(group);
  const line = fs
    .readFileSync('/etc/group', 'utf8')
    .split('\n')
    .find((entry) => entry.split(':')[0] === group);
  if (!line) throw new Error(`no group ${group} in /etc/group`);
  return Number(line.split(':')[2]);
}

/** A socket file left by a crashed broker blocks `listen`; one nobody answers on is removed. */
export async function removeStaleSocket(socketPath: string): Promise<void> {
  if (!fs.existsSync(socketPath)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (!alive) fs.unlinkSync(socketPath);
}
