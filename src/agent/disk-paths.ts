/**
 * The rules of a disk's paths (docs/agent.md "Confinement"): what a `filepath` may be, what
 * "inside the disk" means, and the refusals (code 1 with a reason). No file is opened here:
 * the descriptor walk is disk-folder.ts, the operations confine.ts.
 */
import fs from 'node:fs';
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

/** A path refused or a file operation that failed: code 1 with the reason (PSEC's `status: error`; docs/agent.md "Disks catalogue"). */
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

/** Whether an absolute, resolved path is the disk's root or under it. */
export function inside(disk: Disk, real: string): boolean {
  return real === disk.root || real.startsWith(disk.root + path.sep);
}

/** The segments of a resolved path inside the disk, relative to its root (none for the root itself). */
export function segmentsUnderRoot(disk: Disk, real: string): string[] {
  return real === disk.root ? [] : real.slice(disk.root.length + 1).split(path.sep);
}

export function escapes(disk: Disk, filepath: string): DiskError {
  return new DiskError(`${filepath} leads out of disk ${disk.id} (a symlink points outside it)`, 'symlink-escape');
}

/** The refusal that says why a file operation on `filepath` failed, from its errno. */
export function notFound(disk: Disk, filepath: string, error: unknown): DiskError {
  if (error instanceof DiskError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return new DiskError(`no file ${filepath} on disk ${disk.id}`, 'not-found');
  if (code === 'ELOOP') return new DiskError(`${filepath} on disk ${disk.id} is a symlink loop, or was swapped for a symlink while opened`, 'symlink-loop');
  return new DiskError(`${filepath} on disk ${disk.id}: ${(error as Error).message}`, 'io-error');
}

/** The real path of an existing entry, confined to the disk: where a path leads now, to be walked (disk-folder.ts), never used as is. */
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
