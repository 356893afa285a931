/**
 * Keeps every path of a disk inside it (docs/agent.md "Confinement"). A `filepath` is
 * relative to its disk, without `..`; what it names is resolved with realpath (so a symlink
 * inside the disk is followed, one leading out is refused) and checked again once open, on
 * the descriptor itself (/proc/self/fd), so a directory swapped for a symlink between the
 * check and the open is caught. Only regular files are read or written: a device, a FIFO or
 * a socket is refused (opened O_NONBLOCK, so a FIFO cannot hang the agent).
 */
import { randomBytes } from 'node:crypto';
import fs, { constants } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { RelaisError, ResponseCode } from '../protocol/errors.js';

/** A configured disk, its root resolved once at start. */
export interface Disk {
  id: string;
  label: string;
  /** The realpath of the configured directory. */
  root: string;
  readOnly: boolean;
  watch: boolean;
}

/** Prefix of the files being written: never visible under their final name until complete. */
export const PARTIAL_PREFIX = '.relais-partial-';

/** A path refused or a file operation that failed: code 1 with the reason (seed 001 `status: error`). */
export class DiskError extends RelaisError {
  constructor(message: string, reason: string) {
    super('DISK_ERROR', message, { responseCode: ResponseCode.ERROR, details: { status: 'error', reason } });
  }
}

const MAX_FILEPATH = 4096;

/** The segments of a disk-relative path, or a DiskError saying why it is not one. */
export function segmentsOf(disk: Disk, filepath: unknown): string[] {
  if (typeof filepath !== 'string' || filepath.length === 0) throw new DiskError('filepath must be a non-empty string', 'invalid-path');
  if (filepath.length > MAX_FILEPATH) throw new DiskError(`filepath is longer than ${MAX_FILEPATH} characters`, 'invalid-path');
  if (filepath.includes('\0')) throw new DiskError('filepath must not contain a NUL character', 'invalid-path');
  if (path.isAbsolute(filepath) || filepath.startsWith('\\')) {
    throw new DiskError(`filepath ${JSON.stringify(filepath)} is absolute: give a path relative to disk ${disk.id}`, 'absolute-path');
  }
  const segments = filepath.split('/').filter((segment) => segment !== '' && segment !== '.');
  if (segments.includes('..')) throw new DiskError(`filepath ${JSON.stringify(filepath)} contains '..': paths may not climb out of disk ${disk.id}`, 'parent-segment');
  if (segments.length === 0) throw new DiskError(`filepath ${JSON.stringify(filepath)} names the disk itself, not a file`, 'invalid-path');
  return segments;
}

function inside(disk: Disk, real: string): boolean {
  return real === disk.root || real.startsWith(disk.root + path.sep);
}

function escapes(disk: Disk, filepath: string): DiskError {
  return new DiskError(`${filepath} leads out of disk ${disk.id} (a symlink points outside it)`, 'symlink-escape');
}

/** The real path of an existing entry, confined to the disk. */
export async function resolveExisting(disk: Disk, filepath: string): Promise<string> {
  const segments = segmentsOf(disk, filepath);
  let real: string;
  try {
    real = await fs.promises.realpath(path.join(disk.root, ...segments));
  } catch (error) {
    throw notFound(disk, filepath, error);
  }
  if (!inside(disk, real)) throw escapes(disk, filepath);
  return real;
}

function notFound(disk: Disk, filepath: string, error: unknown): DiskError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return new DiskError(`no file ${filepath} on disk ${disk.id}`, 'not-found');
  if (code === 'ELOOP') return new DiskError(`${filepath} on disk ${disk.id} is a symlink loop, or was swapped for a symlink while opened`, 'symlink-loop');
  return new DiskError(`${filepath} on disk ${disk.id}: ${(error as Error).message}`, 'io-error');
}

/** What kind of thing a non-regular entry is, for the refusal message. */
export function kindOf(stat: fs.Stats): string {
  if (stat.isDirectory()) return 'a folder';
  if (stat.isCharacterDevice()) return 'a character device';
  if (stat.isBlockDevice()) return 'a block device';
  if (stat.isFIFO()) return 'a FIFO (named pipe)';
  if (stat.isSocket()) return 'a socket';
  if (stat.isSymbolicLink()) return 'a symlink';
  return 'not a regular file';
}

/** Checks, on the open descriptor, that what was opened is still inside the disk (Linux: /proc/self/fd). */
async function checkOpened(disk: Disk, handle: FileHandle, filepath: string): Promise<void> {
  let opened: string;
  try {
    opened = await fs.promises.readlink(`/proc/self/fd/${handle.fd}`);
  } catch {
    return; // no /proc: the realpath check before the open is all there is (docs/agent.md)
  }
  if (!inside(disk, opened)) throw escapes(disk, filepath);
}

export interface OpenedFile {
  handle: FileHandle;
  size: number;
  real: string;
}

/** Opens a regular file of the disk for reading. The caller closes `handle`. */
export async function openForReading(disk: Disk, filepath: string): Promise<OpenedFile> {
  const real = await resolveExisting(disk, filepath);
  let handle: FileHandle;
  try {
    // O_NOFOLLOW: `real` has no symlink left; one put there since is refused. O_NONBLOCK: a FIFO does not block the open.
    handle = await fs.promises.open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    throw notFound(disk, filepath, error);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new DiskError(`${filepath} on disk ${disk.id} is ${kindOf(stat)}, not a regular file`, 'not-a-file');
    await checkOpened(disk, handle, filepath);
    return { handle, size: stat.size, real };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

export interface FileBeingWritten {
  handle: FileHandle;
  /** Moves the complete file under its final name (replacing a regular file there). */
  commit(): Promise<void>;
  /** Removes the partial file. */
  discard(): Promise<void>;
}

/** The folder (made if missing) and final path of a file to be written at `filepath`, both confined to the disk. */
export async function prepareDestination(disk: Disk, filepath: string): Promise<{ folder: string; final: string }> {
  if (disk.readOnly) throw new DiskError(`disk ${disk.id} is read-only`, 'read-only');
  const segments = segmentsOf(disk, filepath);
  const base = segments.pop()!;
  let folder = disk.root;
  for (const segment of segments) {
    const next = path.join(folder, segment);
    await fs.promises.mkdir(next).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw notFound(disk, filepath, error);
    });
    const real = await fs.promises.realpath(next).catch((error: unknown) => {
      throw notFound(disk, filepath, error);
    });
    if (!inside(disk, real)) throw escapes(disk, filepath);
    if (!(await fs.promises.stat(real)).isDirectory()) throw new DiskError(`${segments.join('/')} on disk ${disk.id} is not a folder`, 'not-a-folder');
    folder = real;
  }
  const final = path.join(folder, base);
  await checkReplaceable(disk, filepath, final);
  return { folder, final };
}

/** Only a regular file (or nothing) may be replaced by a written file. */
async function checkReplaceable(disk: Disk, filepath: string, final: string): Promise<void> {
  const existing = await fs.promises.lstat(final).catch(() => undefined);
  if (existing && !existing.isFile()) throw new DiskError(`${filepath} on disk ${disk.id} exists and is ${kindOf(existing)}: only a regular file may be replaced`, 'not-a-file');
}

/**
 * Opens (creating it when missing) the partial file `name` in a folder `prepareDestination`
 * made, to write from its current end: a transfer resumes where it stopped. The caller closes it.
 */
export async function openPartial(disk: Disk, filepath: string, folder: string, name: string): Promise<{ handle: FileHandle; path: string; size: number }> {
  const partial = path.join(folder, name);
  const handle = await fs.promises.open(partial, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o640).catch((error: unknown) => {
    throw notFound(disk, filepath, error);
  });
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new DiskError(`the partial file of ${filepath} on disk ${disk.id} is ${kindOf(stat)}`, 'not-a-file');
    await checkOpened(disk, handle, filepath);
    return { handle, path: partial, size: stat.size };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** Moves a complete partial file (synced by the caller) under its final name, after checking that name again. */
export async function commitPartial(disk: Disk, filepath: string, partial: string, final: string): Promise<void> {
  await checkReplaceable(disk, filepath, final);
  await fs.promises.rename(partial, final).catch((error: unknown) => {
    throw notFound(disk, filepath, error);
  });
  // The rename is durable once the folder is synced (a crash after it must not bring the partial back).
  const folder = await fs.promises.open(path.dirname(final), constants.O_RDONLY).catch(() => undefined);
  await folder?.sync().catch(() => {});
  await folder?.close();
}

/**
 * Opens a new file to be written at `filepath`, under a partial name beside it: the final
 * name shows only complete files. Missing folders are made one at a time, each checked.
 */
export async function openForWriting(disk: Disk, filepath: string): Promise<FileBeingWritten> {
  const { folder, final } = await prepareDestination(disk, filepath);
  const partial = path.join(folder, `${PARTIAL_PREFIX}${randomBytes(6).toString('hex')}`);
  const handle = await fs.promises.open(partial, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o640).catch((error: unknown) => {
    throw notFound(disk, filepath, error);
  });
  const discard = async () => {
    await handle.close().catch(() => {});
    await fs.promises.unlink(partial).catch(() => {});
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
        await fs.promises.rename(partial, final);
      } catch (error) {
        await discard();
        throw notFound(disk, filepath, error);
      }
    },
  };
}
