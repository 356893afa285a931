/**
 * Keeps every file operation of a disk inside it (docs/agent.md "Confinement"), against a
 * requester who names paths and against anyone who can write in the disk folder and swap any
 * of its entries at any moment. A `filepath` is checked (disk-paths.ts), resolved with realpath
 * (a symlink inside the disk is followed, one leading out refused), and then never used as a
 * path again: its folder is walked from the disk's root and held open (disk-folder.ts), and the
 * file is opened, created, renamed or unlinked by its name in that held folder. Only regular
 * files are read, written or removed (opened O_NONBLOCK, so a FIFO cannot hang the agent).
 */
import { randomBytes } from 'node:crypto';
import fs, { constants } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { DiskFolder, HAS_PROC_FD, parentOf } from './disk-folder.js';
import { DiskError, escapes, inside, kindOf, notFound, PARTIAL_PREFIX, resolveExisting, segmentsOf, segmentsUnderRoot, type Disk } from './disk-paths.js';

export { DiskError, kindOf, PARTIAL_PREFIX, resolveExisting, segmentsOf, type Disk } from './disk-paths.js';
export { DiskFolder } from './disk-folder.js';

/** The folder of an existing entry, held open, and its name there, once symlinks inside the disk are followed. */
async function locateExisting(disk: Disk, filepath: string): Promise<{ folder: DiskFolder; name: string }> {
  const segments = segmentsUnderRoot(disk, await resolveExisting(disk, filepath));
  if (segments.length === 0) throw new DiskError(`${filepath} on disk ${disk.id} is the disk itself, a folder`, 'not-a-file');
  return parentOf(disk, segments, filepath);
}

/** An existing folder of the disk, held open (symlinks inside the disk followed). The caller closes it. */
export async function openFolder(disk: Disk, filepath: string): Promise<DiskFolder> {
  return DiskFolder.open(disk, segmentsUnderRoot(disk, await resolveExisting(disk, filepath)), filepath);
}

/** What an entry of the disk is (not following a symlink put in its place since it was resolved). */
export async function statExisting(disk: Disk, filepath: string): Promise<fs.Stats> {
  const segments = segmentsUnderRoot(disk, await resolveExisting(disk, filepath));
  const folder = await DiskFolder.open(disk, segments.slice(0, -1), filepath);
  try {
    if (segments.length === 0) return await folder.stat();
    return await fs.promises.lstat(folder.at(segments.at(-1))).catch((error: unknown) => {
      throw notFound(disk, filepath, error);
    });
  } finally {
    await folder.close();
  }
}

/** Checks, on the open descriptor, that what was opened is inside the disk (Linux: /proc/self/fd). */
async function checkOpened(disk: Disk, handle: FileHandle, filepath: string): Promise<void> {
  if (!HAS_PROC_FD) return; // the walk's checks are all there is (docs/agent.md)
  if (!inside(disk, await fs.promises.readlink(`/proc/self/fd/${handle.fd}`))) throw escapes(disk, filepath);
}

export interface OpenedFile {
  handle: FileHandle;
  size: number;
}

/** Opens a regular file of the disk for reading. The caller closes `handle`. */
export async function openForReading(disk: Disk, filepath: string): Promise<OpenedFile> {
  const { folder, name } = await locateExisting(disk, filepath);
  let handle: FileHandle;
  try {
    // O_NOFOLLOW: a symlink put in the file's place since it was resolved is refused. O_NONBLOCK: a FIFO does not block the open.
    handle = await fs.promises.open(folder.at(name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    throw notFound(disk, filepath, error);
  } finally {
    await folder.close();
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new DiskError(`${filepath} on disk ${disk.id} is ${kindOf(stat)}, not a regular file`, 'not-a-file');
    await checkOpened(disk, handle, filepath);
    return { handle, size: stat.size };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** Where a file is to be written: its folder, held open, and its final name there. The caller closes `folder`. */
export interface Destination {
  folder: DiskFolder;
  name: string;
}

/** The folder (made if missing, one folder at a time, each inside the one before) and final name of a file to be written at `filepath`. */
export async function prepareDestination(disk: Disk, filepath: string): Promise<Destination> {
  if (disk.readOnly) throw new DiskError(`disk ${disk.id} is read-only`, 'read-only');
  const destination = await parentOf(disk, segmentsOf(disk, filepath), filepath, { create: true });
  try {
    await checkReplaceable(disk, filepath, destination);
    return destination;
  } catch (error) {
    await destination.folder.close();
    throw error;
  }
}

/** Only a regular file (or nothing) may be replaced by a written file. */
async function checkReplaceable(disk: Disk, filepath: string, { folder, name }: Destination): Promise<void> {
  const existing = await fs.promises.lstat(folder.at(name)).catch(() => undefined);
  if (existing && !existing.isFile()) throw new DiskError(`${filepath} on disk ${disk.id} exists and is ${kindOf(existing)}: only a regular file may be replaced`, 'not-a-file');
}

/**
 * Opens (creating it when missing) the partial file `partialName` in a destination's folder,
 * to write from its current end: a transfer resumes where it stopped. What holds that name and
 * is not a file of its own (a hard link to another file, which writing would change) is
 * removed first. The caller closes the handle.
 */
export async function openPartial(disk: Disk, filepath: string, { folder }: Destination, partialName: string): Promise<{ handle: FileHandle; size: number }> {
  const flags = constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK;
  for (let attempt = 0; ; attempt += 1) {
    const handle = await fs.promises.open(folder.at(partialName), flags | (attempt > 0 ? constants.O_EXCL : 0), 0o640).catch((error: unknown) => {
      throw notFound(disk, filepath, error);
    });
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw new DiskError(`the partial file of ${filepath} on disk ${disk.id} is ${kindOf(stat)}`, 'not-a-file');
      await checkOpened(disk, handle, filepath);
      if (stat.nlink === 1) return { handle, size: stat.size };
      if (attempt > 0) throw new DiskError(`the partial file of ${filepath} on disk ${disk.id} keeps being linked elsewhere`, 'not-a-file');
    } catch (error) {
      await handle.close();
      throw error;
    }
    await handle.close();
    await fs.promises.unlink(folder.at(partialName)).catch(() => {});
  }
}

/**
 * Moves a complete partial file (synced by the caller) under its final name, in the same held
 * folder, once that folder is checked to be inside the disk still; then syncs the folder.
 */
export async function commitPartial(disk: Disk, filepath: string, destination: Destination, partialName: string): Promise<void> {
  const { folder, name } = destination;
  await folder.checkInside(filepath);
  await checkReplaceable(disk, filepath, destination);
  await fs.promises.rename(folder.at(partialName), folder.at(name)).catch((error: unknown) => {
    throw notFound(disk, filepath, error);
  });
  // The rename is durable once the folder is synced (a crash after it must not bring the partial back).
  await folder.sync();
}

/** Removes the partial file `partialName` of a destination, if it is there: only ever a name of that held folder. */
export async function removePartial({ folder }: Destination, partialName: string): Promise<void> {
  await fs.promises.unlink(folder.at(partialName)).catch(() => {});
}

export interface FileBeingWritten {
  handle: FileHandle;
  /** Moves the complete file under its final name (replacing a regular file there). */
  commit(): Promise<void>;
  /** Removes the partial file. */
  discard(): Promise<void>;
}

/**
 * Opens a new file to be written at `filepath`, under a partial name beside it: the final
 * name shows only complete files.
 */
export async function openForWriting(disk: Disk, filepath: string): Promise<FileBeingWritten> {
  const destination = await prepareDestination(disk, filepath);
  const partialName = `${PARTIAL_PREFIX}${randomBytes(6).toString('hex')}`;
  const handle = await fs.promises.open(destination.folder.at(partialName), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o640).catch(async (error: unknown) => {
    await destination.folder.close();
    throw notFound(disk, filepath, error);
  });
  const discard = async () => {
    await handle.close().catch(() => {});
    await removePartial(destination, partialName);
    await destination.folder.close();
  };
  try {
    await checkOpened(disk, handle, filepath);
  } catch (error) {
    await discard();
    throw error;
  }
  return {
    handle,
    discard,
    async commit() {
      try {
        await handle.sync();
        await handle.close();
        await commitPartial(disk, filepath, destination, partialName);
        await destination.folder.close();
      } catch (error) {
        await discard();
        throw notFound(disk, filepath, error);
      }
    },
  };
}

/** Removes a regular file of a read-write disk: unlinked by its name in its held folder, never through a path. */
export async function removeFile(disk: Disk, filepath: string): Promise<void> {
  if (disk.readOnly) throw new DiskError(`disk ${disk.id} is read-only`, 'read-only');
  const { folder, name } = await locateExisting(disk, filepath);
  try {
    const stat = await fs.promises.lstat(folder.at(name)).catch((error: unknown) => {
      throw notFound(disk, filepath, error);
    });
    if (!stat.isFile()) throw new DiskError(`${filepath} on disk ${disk.id} is ${kindOf(stat)}: only regular files are removed`, 'not-a-file');
    await folder.checkInside(filepath);
    await fs.promises.unlink(folder.at(name)).catch((error: unknown) => {
      throw notFound(disk, filepath, error);
    });
  } finally {
    await folder.close();
  }
}
