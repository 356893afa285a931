/**
 * The sweep of partial files (docs/agent.md "Limits"): a `.relais-partial-*` file of a
 * read-write disk that nobody has written for `olderThanMs` is of no use (its transfer was
 * abandoned, or the agent stopped and its sender never came back) and is removed. Folders are
 * walked by descriptor, never through a symlink (disk-folder.ts), and each file is removed by
 * its name in its held folder: the sweep removes nothing outside the disk.
 */
import fs from 'node:fs';
import { DiskFolder, PARTIAL_PREFIX, type Disk } from './confine.js';

export interface Swept {
  removed: number;
  bytes: number;
}

/**
 * Removes the partial files of `disk` last written more than `olderThanMs` ago, but those
 * `inUse` names; stops early (with what it removed so far) once `signal` aborts.
 */
export async function removeStalePartials(disk: Disk, olderThanMs: number, inUse: (partialName: string) => boolean, signal: AbortSignal): Promise<Swept> {
  const cutoff = Date.now() - olderThanMs;
  const swept: Swept = { removed: 0, bytes: 0 };
  const visit = async (folder: DiskFolder, relative: string): Promise<void> => {
    const entries = await fs.promises.readdir(folder.at(), { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      if (signal.aborted) return;
      const entryPath = relative ? `${relative}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        const child = await folder.child(entry.name, entryPath).catch(() => undefined);
        if (child instanceof DiskFolder) await visit(child, entryPath).finally(() => child.close());
      } else if (entry.isFile() && entry.name.startsWith(PARTIAL_PREFIX) && !inUse(entry.name)) {
        const stat = await fs.promises.lstat(folder.at(entry.name)).catch(() => undefined);
        if (!stat?.isFile() || stat.mtimeMs > cutoff || inUse(entry.name)) continue;
        await fs.promises.unlink(folder.at(entry.name)).then(
          () => {
            swept.removed += 1;
            swept.bytes += stat.size;
          },
          () => {},
        );
      }
    }
  };
  const root = await DiskFolder.root(disk);
  try {
    await visit(root, '');
  } finally {
    await root.close();
  }
  return swept;
}
