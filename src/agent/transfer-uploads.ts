/**
 * The receiving end of `relais send` on the agent (docs/agent.md "File transfer"): each
 * upload writes its chunks, strictly in order, to `.relais-partial-<transfer id>` beside its
 * destination, hashing as it goes; `put_end` checks the SHA-256, syncs, and only then renames
 * the file to its final name. What was received stays on disk when the sender goes away:
 * `put_begin` of the same transfer answers its length, and the sender continues from there.
 */
import { createHash, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { Logger } from 'pino';
import { BusyError } from '../protocol/errors.js';
import { fromBase64, type Base64Value } from '../protocol/binary.js';
import { commitPartial, openPartial, prepareDestination, removePartial, type Destination, type Disk } from './confine.js';
import { hashRange } from './disk-io.js';
import { partialNameOf, TransferError, type PutBeginAnswer } from './transfer-protocol.js';
import type { TransferSettings } from './transfer.js';

interface Upload {
  id: string;
  disk: Disk;
  filepath: string;
  size: number;
  sha256: string;
  /** Its folder, held open, and its final name there: the partial file is renamed in that very folder. */
  destination: Destination;
  partialName: string;
  handle: FileHandle;
  /** Bytes written and hashed: the partial file's length. */
  offset: number;
  hash: Hash;
  /** Raised by each `put_begin`: chunks of an earlier attempt, still on their way, are refused. */
  generation: number;
  /** The chunks' writes, one after the other. */
  queue: Promise<unknown>;
  queued: number;
  idle?: NodeJS.Timeout;
}

export class Uploads {
  private readonly uploads = new Map<string, Upload>();

  constructor(
    private readonly settings: TransferSettings,
    private readonly logger: Logger,
    /** Transfers open in the other direction, counted against `maxTransfers`. */
    private readonly othersOpen: () => number,
  ) {}

  get open(): number {
    return this.uploads.size;
  }

  async begin(request: { transfer: string; disk: Disk; filepath: string; size: number; sha256: string }, requester: string): Promise<PutBeginAnswer> {
    const { transfer, disk, filepath, size } = request;
    // Refused before anything is written, not even a folder.
    if (size > this.settings.maxFileBytes) throw new TransferError(`${filepath} is ${size} bytes, over this agent's limit of ${this.settings.maxFileBytes} (services.transfer.maxFileBytes)`, 'too-large', { limit: this.settings.maxFileBytes });
    let upload = this.uploads.get(transfer);
    if (upload && (upload.disk.id !== disk.id || upload.filepath !== filepath || upload.size !== size || upload.sha256 !== request.sha256)) {
      throw new TransferError(`transfer ${transfer} is ${upload.filepath} on disk ${upload.disk.id} (${upload.size} bytes, SHA-256 ${upload.sha256}), not this file`, 'transfer-conflict');
    }
    if (upload) {
      upload.generation += 1;
      await upload.queue; // the earlier attempt's writes end before its offset is told
    } else {
      if (this.open + this.othersOpen() >= this.settings.maxTransfers) throw new BusyError(`this agent has ${this.settings.maxTransfers} transfers open (services.transfer.maxTransfers); try again later`);
      upload = await this.open_(request);
    }
    this.touch(upload);
    this.logger.info({ transfer, disk: disk.id, filepath, size, offset: upload.offset, requester }, upload.offset > 0 ? 'upload resumed' : 'upload started');
    return { transfer, offset: upload.offset, generation: upload.generation, chunkBytes: this.settings.chunkBytes, window: this.settings.window };
  }

  private async open_(request: { transfer: string; disk: Disk; filepath: string; size: number; sha256: string }): Promise<Upload> {
    const { transfer, disk, filepath } = request;
    const destination = await prepareDestination(disk, filepath);
    const partialName = partialNameOf(transfer);
    const opened = await openPartial(disk, filepath, destination, partialName).catch(async (error: unknown) => {
      await destination.folder.close();
      throw error;
    });
    let offset = opened.size;
    try {
      if (offset > request.size) {
        // Longer than the file it is meant to be: not ours to trust, start again.
        await opened.handle.truncate(0);
        offset = 0;
      }
      // What an earlier run of the agent received is hashed again: the hash so far lived in its memory.
      const hash = await hashRange(opened.handle, offset, createHash('sha256'));
      const upload: Upload = { ...request, id: transfer, destination, partialName, handle: opened.handle, offset, hash, generation: 1, queue: Promise.resolve(), queued: 0 };
      // Another begin of the same transfer may have raced this one: the first one opened wins.
      const raced = this.uploads.get(transfer);
      if (raced) {
        await opened.handle.close();
        await destination.folder.close();
        return raced;
      }
      this.uploads.set(transfer, upload);
      return upload;
    } catch (error) {
      await opened.handle.close().catch(() => {});
      await destination.folder.close();
      throw error;
    }
  }

  /**
   * Queues one chunk's write. Everything is checked before the first `await`, so chunks are
   * queued in the order they arrived (MQTT keeps the order of one sender's messages).
   */
  chunk(request: { transfer: string; generation: number; offset: number; data: Base64Value }): Promise<{ offset: number }> {
    const upload = this.named(request.transfer);
    if (request.generation !== upload.generation) {
      throw new TransferError(`chunk of an earlier attempt of transfer ${upload.id} (generation ${request.generation}, now ${upload.generation})`, 'stale-generation', { generation: upload.generation });
    }
    let bytes: Uint8Array;
    try {
      bytes = fromBase64(request.data);
    } catch (error) {
      throw new TransferError(`data: ${(error as Error).message}`, 'invalid-data');
    }
    if (bytes.length > this.settings.chunkBytes) throw new TransferError(`a chunk of ${bytes.length} bytes is over ${this.settings.chunkBytes} (services.transfer.chunkBytes)`, 'chunk-too-large');
    // A sender keeps at most `window` chunks in flight: more queued is not a sender of ours.
    if (upload.queued >= this.settings.window * 2) throw new BusyError(`transfer ${upload.id} has ${upload.queued} chunks queued already`);
    upload.queued += 1;
    this.touch(upload);
    const write = upload.queue.then(() => this.write(upload, request.offset, bytes, request.generation));
    upload.queue = write.catch(() => {}).finally(() => (upload.queued -= 1));
    return write;
  }

  private async write(upload: Upload, offset: number, bytes: Uint8Array, generation: number): Promise<{ offset: number }> {
    if (generation !== upload.generation) throw new TransferError(`chunk of an earlier attempt of transfer ${upload.id}`, 'stale-generation', { generation: upload.generation });
    // A chunk written already (sent again by the library after a reconnection) changes nothing: same transfer, same bytes.
    if (offset + bytes.length <= upload.offset && bytes.length > 0) return { offset: upload.offset };
    if (offset !== upload.offset) throw new TransferError(`transfer ${upload.id} expects the chunk at offset ${upload.offset}, got ${offset}`, 'offset-mismatch', { expected: upload.offset });
    if (offset + bytes.length > upload.size) throw new TransferError(`a chunk at ${offset} of ${bytes.length} bytes goes past the announced size ${upload.size}`, 'offset-mismatch', { expected: upload.offset });
    try {
      let written = 0;
      while (written < bytes.length) written += (await upload.handle.write(bytes, written, bytes.length - written, offset + written)).bytesWritten;
    } catch (error) {
      // A write cut short leaves the file a prefix again, so its length stays the offset to resume from.
      await upload.handle.truncate(upload.offset).catch(() => {});
      throw error;
    }
    upload.hash.update(bytes);
    upload.offset += bytes.length;
    return { offset: upload.offset };
  }

  /** Checks the whole file's hash, syncs it and moves it under its final name. */
  async end(request: { transfer: string; generation: number }): Promise<{ status: 'ok'; disk: string; filepath: string; size: number; sha256: string }> {
    const upload = this.named(request.transfer);
    if (request.generation !== upload.generation) throw new TransferError(`put_end of an earlier attempt of transfer ${upload.id}`, 'stale-generation', { generation: upload.generation });
    await upload.queue;
    if (upload.offset !== upload.size) throw new TransferError(`transfer ${upload.id} has ${upload.offset} of ${upload.size} bytes`, 'incomplete', { expected: upload.offset });
    const received = upload.hash.copy().digest('hex');
    this.forget(upload);
    if (received !== upload.sha256) {
      await upload.handle.close().catch(() => {});
      await removePartial(upload.destination, upload.partialName);
      await upload.destination.folder.close();
      this.logger.warn({ transfer: upload.id, disk: upload.disk.id, filepath: upload.filepath, expected: upload.sha256, received }, 'upload refused: SHA-256 mismatch');
      throw new TransferError(`${upload.filepath}: the SHA-256 of what was received (${received}) is not the sender's (${upload.sha256}); the partial file is removed`, 'hash-mismatch');
    }
    try {
      await upload.handle.sync();
    } finally {
      await upload.handle.close().catch(() => {});
    }
    try {
      await commitPartial(upload.disk, upload.filepath, upload.destination, upload.partialName);
    } finally {
      await upload.destination.folder.close();
    }
    this.logger.info({ transfer: upload.id, disk: upload.disk.id, filepath: upload.filepath, size: upload.size }, 'upload complete');
    return { status: 'ok', disk: upload.disk.id, filepath: upload.filepath, size: upload.size, sha256: received };
  }

  private named(transfer: string): Upload {
    const upload = this.uploads.get(transfer);
    if (!upload) throw new TransferError(`no upload ${transfer} is open on this agent (it ended, or was idle too long): begin it again`, 'unknown-transfer');
    return upload;
  }

  private touch(upload: Upload): void {
    clearTimeout(upload.idle);
    upload.idle = setTimeout(() => {
      this.forget(upload);
      this.logger.info({ transfer: upload.id, offset: upload.offset }, 'upload idle: its file is closed, its partial file kept to resume');
      void upload.queue.then(() => upload.handle.close()).catch(() => {}).then(() => upload.destination.folder.close());
    }, this.settings.idleTimeout * 1000);
    upload.idle.unref();
  }

  private forget(upload: Upload): void {
    clearTimeout(upload.idle);
    if (this.uploads.get(upload.id) === upload) this.uploads.delete(upload.id);
  }

  async close(): Promise<void> {
    const open = [...this.uploads.values()];
    for (const upload of open) this.forget(upload);
    await Promise.all(open.map((upload) => upload.queue.then(() => upload.handle.close()).catch(() => {}).then(() => upload.destination.folder.close())));
  }
}
