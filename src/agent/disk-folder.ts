/**
 * A folder of a disk held open by its descriptor (docs/agent.md "Confinement").
 *
 * Node has no openat(2) family, but Linux gives one through /proc: `/proc/self/fd/<fd>` is a
 * "magic link" that the kernel follows to the very file the descriptor holds, not to a path
 * name. So `/proc/self/fd/<fd>/<name>` names `name` inside the folder `<fd>` holds, wherever
 * that folder has been moved since and whatever has taken its old path; open, mkdir, rename,
 * unlink and readdir on it act in that folder as their *at() forms would. Once a folder is
 * open, no component above it can be swapped under the agent any more.
 *
 * A folder is opened by a walk from the disk's root, one segment at a time, each opened with
 * O_DIRECTORY | O_NOFOLLOW inside the folder before it: the kernel follows no symlink during
 * the walk. A symlink met on the way (one the disk holds on purpose, or one an attacker just
 * swapped in) is resolved, must lead inside the disk, and the walk starts again from the
 * root along where it leads. So every folder the agent holds was found as a real folder inside
 * the one before it, from the root. Its place is checked once more (`checkInside`, the path
 * the kernel gives for the descriptor) before it is returned and before a rename into it.
 *
 * Without /proc (not Linux) names are joined to the walked path as text: the same checks run,
 * but a folder swapped between two calls is not caught (docs/agent.md says so).
 */
import fs, { constants } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { DiskError, escapes, inside, notFound, segmentsUnderRoot, type Disk } from './disk-paths.js';

/** Whether names can be reached through a held descriptor (Linux /proc). */
export const HAS_PROC_FD = fs.existsSync('/proc/self/fd');

/** Symlinks followed in one walk at most, as the kernel's own limit for one lookup (MAXSYMLINKS). */
const MAX_SYMLINKS = 40;

const FOLDER_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

export class DiskFolder {
  private closed = false;

  private constructor(
    readonly disk: Disk,
    private readonly handle: FileHandle,
    /** The path it was walked by: used only without /proc, and in messages. */
    private readonly walked: string,
  ) {}

  /**
   * The folder at `segments` of `disk`, walked from the root (made when missing with
   * `create`, each folder made inside the one just opened). `filepath` is what the request
   * named, for refusals. The caller closes it.
   */
  static async open(disk: Disk, segments: readonly string[], filepath: string, options: { create?: boolean } = {}): Promise<DiskFolder> {
    let folder = await DiskFolder.root(disk);
    const pending = [...segments];
    let restarts = 0;
    try {
      while (pending.length > 0) {
        const segment = pending.shift()!;
        if (options.create) {
          await fs.promises.mkdir(folder.at(segment)).catch((error: NodeJS.ErrnoException) => {
            if (error.code !== 'EEXIST') throw notFound(disk, filepath, error);
          });
        }
        const next = await folder.child(segment, filepath);
        if (next instanceof DiskFolder) {
          await folder.close();
          folder = next;
          continue;
        }
        if (++restarts > MAX_SYMLINKS) throw new DiskError(`${filepath} on disk ${disk.id}: too many symlinks on the way, or its folders keep changing`, 'symlink-loop');
        if (next === 'changed') {
          pending.unshift(segment);
          continue;
        }
        // A symlink: where it leads now, which must be inside the disk, is walked again from the root.
        const target = await fs.promises.realpath(folder.at(segment)).catch((error: unknown) => {
          throw notFound(disk, filepath, error);
        });
        if (!inside(disk, target)) throw escapes(disk, filepath);
        pending.unshift(...segmentsUnderRoot(disk, target));
        await folder.close();
        folder = await DiskFolder.root(disk);
      }
      await folder.checkInside(filepath);
      return folder;
    } catch (error) {
      await folder.close();
      throw error;
    }
  }

  /** The disk's root. Its path was resolved at start and is the operator's: a root that is gone is a failure of the disk, not a refusal. */
  static async root(disk: Disk): Promise<DiskFolder> {
    return new DiskFolder(disk, await fs.promises.open(disk.root, FOLDER_FLAGS), disk.root);
  }

  /** A path naming `name` in this very folder (`/proc/self/fd/<fd>/<name>`); `''` names the folder itself. */
  at(name = ''): string {
    if (!HAS_PROC_FD) return name ? path.join(this.walked, name) : this.walked;
    return name ? `/proc/self/fd/${this.handle.fd}/${name}` : `/proc/self/fd/${this.handle.fd}`;
  }

  /** Opens the folder `name` of this one; `'symlink'` when it is one, `'changed'` when it was neither a moment ago. */
  async child(name: string, filepath: string): Promise<DiskFolder | 'symlink' | 'changed'> {
    try {
      return new DiskFolder(this.disk, await fs.promises.open(this.at(name), FOLDER_FLAGS), path.join(this.walked, name));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // O_DIRECTORY | O_NOFOLLOW on a symlink is ENOTDIR or ELOOP, as on a file: lstat tells which.
      if (code !== 'ENOTDIR' && code !== 'ELOOP') throw notFound(this.disk, filepath, error);
      const stat = await fs.promises.lstat(this.at(name)).catch(() => undefined);
      if (stat?.isSymbolicLink()) return 'symlink';
      if (stat === undefined || stat.isDirectory()) return 'changed';
      throw new DiskError(`${name} in ${filepath} on disk ${this.disk.id} is not a folder`, 'not-a-folder');
    }
  }

  /** Where the folder is now, by its descriptor (the kernel's path for it). */
  async where(): Promise<string> {
    return HAS_PROC_FD ? fs.promises.readlink(this.at()) : this.walked;
  }

  /** Refuses (symlink-escape) unless the folder is inside the disk now. */
  async checkInside(filepath: string): Promise<void> {
    if (!inside(this.disk, await this.where())) throw escapes(this.disk, filepath);
  }

  /** What the held folder is (fstat). */
  stat(): Promise<fs.Stats> {
    return this.handle.stat();
  }

  /** Makes the entries of this folder durable (after a rename into it). */
  async sync(): Promise<void> {
    await this.handle.sync().catch(() => {});
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close().catch(() => {});
  }
}

/** The folder holding `segments`' last one, and that last name: where a file of the disk is. */
export async function parentOf(disk: Disk, segments: readonly string[], filepath: string, options: { create?: boolean } = {}): Promise<{ folder: DiskFolder; name: string }> {
  const name = segments.at(-1)!;
  return { folder: await DiskFolder.open(disk, segments.slice(0, -1), filepath, options), name };
}
