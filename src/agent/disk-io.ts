/**
 * The streaming parts of the disks service: a copy between disks with progress, and a
 * file's SHA-256. Both go through one 1 MiB buffer: a file of any size costs that much memory.
 */
import { createHash, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { HandlerContext } from '../client/index.js';
import { openForReading, openForWriting, type Disk } from './confine.js';

const CHUNK_BYTES = 1024 * 1024;

/** Reads a whole file chunk by chunk; `each` gets a view of the shared buffer (use it before it returns). */
async function eachChunk(handle: FileHandle, signal: AbortSignal, each: (chunk: Buffer) => Promise<void> | void): Promise<number> {
  const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  let total = 0;
  for (;;) {
    signal.throwIfAborted();
    const { bytesRead } = await handle.read(buffer, 0, CHUNK_BYTES, null);
    if (bytesRead === 0) return total;
    total += bytesRead;
    await each(buffer.subarray(0, bytesRead));
  }
}

/** Copies `filepath` of `from` to the same path on `to`, reporting progress by whole percents. Returns the bytes copied. */
export async function copyBetweenDisks(from: Disk, to: Disk, filepath: string, ctx: HandlerContext): Promise<number> {
  const source = await openForReading(from, filepath);
  try {
    const target = await openForWriting(to, filepath);
    let reported = -1;
    let copied = 0;
    try {
      await eachChunk(source.handle, ctx.signal, async (chunk) => {
        await target.handle.write(chunk);
        copied += chunk.length;
        const percent = source.size === 0 ? 100 : Math.min(Math.floor((copied / source.size) * 100), 100);
        if (percent > reported) {
          reported = percent;
          ctx.progress(percent / 100, { bytes: copied, total: source.size });
        }
      });
    } catch (error) {
      await target.discard();
      throw error;
    }
    await target.commit();
    return copied;
  } finally {
    await source.handle.close().catch(() => {});
  }
}

/** The SHA-256 of a file of the disk, in hex. */
export async function footprintOf(disk: Disk, filepath: string, signal: AbortSignal): Promise<string> {
  const source = await openForReading(disk, filepath);
  try {
    const hash = createHash('sha256');
    await eachChunk(source.handle, signal, (chunk) => void hash.update(chunk));
    return hash.digest('hex');
  } finally {
    await source.handle.close().catch(() => {});
  }
}

/** Feeds bytes [0, length) of an open file to `hash` (positional reads: the file's position is left alone). */
export async function hashRange(handle: FileHandle, length: number, hash: Hash, signal?: AbortSignal): Promise<Hash> {
  const buffer = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, Math.max(length, 1)));
  for (let at = 0; at < length; ) {
    signal?.throwIfAborted();
    const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, length - at), at);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    at += bytesRead;
  }
  return hash;
}
