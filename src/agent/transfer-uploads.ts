/**
 * The receiving end of `relais send` on the agent (docs/agent.md "File transfer"): each
 * upload belongs to the identity that began it (the envelope `source`, which the broker
 * checks when security is on) and is known by that identity and its transfer id together:
 * another identity naming the same id begins its own upload, and its chunks or its end of
 * this one are refused as unknown. An upload writes its chunks, strictly in order, to a
 * partial file beside its destination (named from the identity and the id), hashing as it
 * goes; `put_end` checks the SHA-256, syncs, and only then renames the file to its final name.
 * What was received stays on disk when the sender goes away for a while: `put_begin` of the
 * same transfer answers its length, and the sender continues from there. An upload silent for
 * longer than its progress earns (transfer-limits.ts) is abandoned: its slot freed, its
 * partial file removed.
 */
import { createHash, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { Logger } from 'pino';
import { BusyError } from '../protocol/errors.js';
import { commitPartial, openPartial, prepareDestination, removePartial, type Destination, type Disk } from './confine.js';
import { hashRange } from './disk-io.js';
import { SilenceClock, type TransferSlots } from './transfer-limits.js';
import { TransferError, uploadPartialNameOf, type PutBeginAnswer, type PutChunk } from './transfer-protocol.js';
import type { TransferSettings } from './transfer.js';

interface UploadRequest {
  transfer: string;
  disk: Disk;
  filepath: string;
  size: number;
  sha256: string;
}

interface Upload extends UploadRequest {
  /** The identity and the transfer id: the key of the upload. */
  key: string;
  identity: string;
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
  clock: SilenceClock;
  release: () => void;
}

const keyOf = (identity: string, transfer: string) => `${identity}\n${transfer}`;

export class Uploads {
  private readonly uploads = new Map<string, Upload>();
  /** Uploads being opened, and uploads being put away (file closed, partial removed), by key: one at a time per key. */
  private readonly opening = new Map<string, Promise<Upload>>();
  private readonly closing = new Map<string, Promise<void>>();
  /** Partial files of uploads open or being opened: a sweep leaves them alone. */
  private readonly partialsInUse = new Set<string>();
  private sweeping: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly settings: TransferSettings,
    private readonly logger: Logger,
    private readonly slots: TransferSlots,
  ) {}

  async begin(request: UploadRequest, identity: string): Promise<PutBeginAnswer> {
    const { transfer, disk, filepath, size } = request;
    // Refused before anything is written, not even a folder.
    const limit = Math.min(this.settings.maxFileBytes, this.settings.maxBytesPerIdentity);
    if (size > limit) {
      const setting = limit === this.settings.maxFileBytes ? 'maxFileBytes' : 'maxBytesPerIdentity';
      throw new TransferError(`${filepath} is ${size} bytes, over this agent's limit of ${limit} (services.transfer.${setting})`, 'too-large', { limit });
    }
    const key = keyOf(identity, transfer);
    let upload = this.uploads.get(key);
    const pending = this.opening.get(key);
    if (!upload && pending) upload = await pending.catch(() => undefined);
    upload ??= this.uploads.get(key);
    if (upload && (upload.disk.id !== disk.id || upload.filepath !== filepath || upload.size !== size || upload.sha256 !== request.sha256)) {
      throw new TransferError(`transfer ${transfer} is ${upload.filepath} on disk ${upload.disk.id} (${upload.size} bytes, SHA-256 ${upload.sha256}), not this file`, 'transfer-conflict');
    }
    if (upload) {
      upload.generation += 1;
      await upload.queue; // the earlier attempt's writes end before its offset is told
    } else {
      const opened = this.open(request, identity, key);
      this.opening.set(key, opened);
      try {
        upload = await opened;
      } finally {
        this.opening.delete(key);
      }
    }
    this.logger.info({ transfer, disk: disk.id, filepath, size, offset: upload.offset, requester: identity }, upload.offset > 0 ? 'upload resumed' : 'upload started');
    return { transfer, offset: upload.offset, generation: upload.generation, chunkBytes: this.settings.chunkBytes, window: this.settings.window };
  }

  private async open(request: UploadRequest, identity: string, key: string): Promise<Upload> {
    const { transfer, disk, filepath, size } = request;
    const release = this.slots.take(identity, size);
    const partialName = uploadPartialNameOf(identity, transfer);
    this.partialsInUse.add(partialName);
    try {
      await this.closing.get(key); // the same upload, abandoned a moment ago, is put away first
      await this.sweeping; // a sweep that began before this upload was known ends first
      const destination = await prepareDestination(disk, filepath);
      let opened: Awaited<ReturnType<typeof openPartial>>;
      try {
        opened = await openPartial(disk, filepath, destination, partialName);
      } catch (error) {
        await destination.folder.close();
        throw error;
      }
      try {
        let offset = opened.size;
        if (offset > size) {
          // Longer than the file it is meant to be: not ours to trust, start again.
          await opened.handle.truncate(0);
          offset = 0;
        }
        // What an earlier run of the agent received is hashed again: the hash so far lived in its memory.
        const hash = await hashRange(opened.handle, offset, createHash('sha256'));
        const upload: Upload = {
          ...request,
          key,
          identity,
          destination,
          partialName,
          handle: opened.handle,
          offset,
          hash,
          generation: 1,
          queue: Promise.resolve(),
          queued: 0,
          release,
          clock: new SilenceClock(this.settings, (allowedMs) => this.abandon(upload, allowedMs)),
        };
        upload.clock.restart(fractionOf(upload));
        this.uploads.set(key, upload);
        return upload;
      } catch (error) {
        await opened.handle.close().catch(() => {});
        await destination.folder.close();
        throw error;
      }
    } catch (error) {
      release();
      this.partialsInUse.delete(partialName);
      throw error;
    }
  }

  /**
   * Queues one chunk's write. Everything is checked before the first `await`, so chunks are
   * queued in the order they arrived (MQTT keeps the order of one sender's messages).
   */
  chunk(request: PutChunk, identity: string): Promise<{ offset: number }> {
    const upload = this.named(request.transfer, identity);
    if (request.generation !== upload.generation) {
      throw new TransferError(`chunk of an earlier attempt of transfer ${upload.transfer} (generation ${request.generation}, now ${upload.generation})`, 'stale-generation', { generation: upload.generation });
    }
    const bytes = request.data;
    if (bytes.length > this.settings.chunkBytes) throw new TransferError(`a chunk of ${bytes.length} bytes is over ${this.settings.chunkBytes} (services.transfer.chunkBytes)`, 'chunk-too-large');
    // A sender keeps at most `window` chunks in flight: more queued is not a sender of ours.
    if (upload.queued >= this.settings.window * 2) throw new BusyError(`transfer ${upload.transfer} has ${upload.queued} chunks queued already`);
    upload.queued += 1;
    const write = upload.queue.then(() => this.write(upload, request.offset, bytes, request.generation));
    upload.queue = write.catch(() => {}).finally(() => (upload.queued -= 1));
    return write;
  }

  private async write(upload: Upload, offset: number, bytes: Uint8Array, generation: number): Promise<{ offset: number }> {
    if (generation !== upload.generation) throw new TransferError(`chunk of an earlier attempt of transfer ${upload.transfer}`, 'stale-generation', { generation: upload.generation });
    if (this.uploads.get(upload.key) !== upload) throw this.unknown(upload.transfer);
    // A chunk written already (sent again by the library after a reconnection) changes nothing: same transfer, same bytes.
    if (offset + bytes.length <= upload.offset && bytes.length > 0) return { offset: upload.offset };
    if (offset !== upload.offset) throw new TransferError(`transfer ${upload.transfer} expects the chunk at offset ${upload.offset}, got ${offset}`, 'offset-mismatch', { expected: upload.offset });
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
    // Progress: the silence it may keep starts again, longer the further it is.
    if (bytes.length > 0) upload.clock.restart(fractionOf(upload));
    return { offset: upload.offset };
  }

  /** Checks the whole file's hash, syncs it and moves it under its final name. */
  async end(request: { transfer: string; generation: number }, identity: string): Promise<{ status: 'ok'; disk: string; filepath: string; size: number; sha256: string }> {
    const upload = this.named(request.transfer, identity);
    if (request.generation !== upload.generation) throw new TransferError(`put_end of an earlier attempt of transfer ${upload.transfer}`, 'stale-generation', { generation: upload.generation });
    await upload.queue;
    if (this.uploads.get(upload.key) !== upload) throw this.unknown(upload.transfer);
    if (upload.offset !== upload.size) throw new TransferError(`transfer ${upload.transfer} has ${upload.offset} of ${upload.size} bytes`, 'incomplete', { expected: upload.offset });
    const received = upload.hash.copy().digest('hex');
    this.forget(upload);
    let outcome = 'refused' as 'complete' | 'refused';
    const putAway = (async () => {
      try {
        if (received !== upload.sha256) return;
        try {
          await upload.handle.sync();
        } finally {
          await upload.handle.close().catch(() => {});
        }
        await commitPartial(upload.disk, upload.filepath, upload.destination, upload.partialName);
        outcome = 'complete';
      } finally {
        await upload.handle.close().catch(() => {});
        // Whatever was not moved into place is of no use any more: nothing is left behind.
        if (outcome !== 'complete') await removePartial(upload.destination, upload.partialName);
        await upload.destination.folder.close();
        this.partialsInUse.delete(upload.partialName);
      }
    })();
    this.closing.set(upload.key, putAway.catch(() => {}));
    try {
      await putAway;
    } finally {
      this.closing.delete(upload.key);
    }
    if (outcome !== 'complete') {
      this.logger.warn({ transfer: upload.transfer, disk: upload.disk.id, filepath: upload.filepath, expected: upload.sha256, received, requester: identity }, 'upload refused: SHA-256 mismatch');
      throw new TransferError(`${upload.filepath}: the SHA-256 of what was received (${received}) is not the sender's (${upload.sha256}); the partial file is removed`, 'hash-mismatch');
    }
    this.logger.info({ transfer: upload.transfer, disk: upload.disk.id, filepath: upload.filepath, size: upload.size, requester: identity }, 'upload complete');
    return { status: 'ok', disk: upload.disk.id, filepath: upload.filepath, size: upload.size, sha256: received };
  }

  /** The upload `transfer` of `identity`; another identity's is as unknown as one that never was. */
  private named(transfer: string, identity: string): Upload {
    const upload = this.uploads.get(keyOf(identity, transfer));
    if (!upload) throw this.unknown(transfer);
    return upload;
  }

  private unknown(transfer: string): TransferError {
    return new TransferError(`no upload ${transfer} of yours is open on this agent (it ended, or was silent too long): begin it again`, 'unknown-transfer');
  }

  /** Silent longer than its progress earns: the slot is freed at once, then the partial file removed (and then logged). */
  private abandon(upload: Upload, allowedMs: number): void {
    if (this.uploads.get(upload.key) !== upload) return;
    this.forget(upload);
    const putAway = upload.queue
      .then(() => upload.handle.close())
      .catch(() => {})
      .then(() => removePartial(upload.destination, upload.partialName))
      .then(() => upload.destination.folder.close())
      .finally(() => {
        this.partialsInUse.delete(upload.partialName);
        if (this.closing.get(upload.key) === putAway) this.closing.delete(upload.key);
        this.logger.warn(
          { transfer: upload.transfer, disk: upload.disk.id, filepath: upload.filepath, requester: upload.identity, offset: upload.offset, size: upload.size, silentMs: allowedMs },
          'upload abandoned: silent longer than its progress allows; its slot is freed and its partial file removed',
        );
      });
    this.closing.set(upload.key, putAway);
  }

  private forget(upload: Upload): void {
    upload.clock.stop();
    upload.release();
    if (this.uploads.get(upload.key) === upload) this.uploads.delete(upload.key);
  }

  /**
   * Runs a sweep of partial files (transfer-sweep.ts) given what to leave alone; an upload
   * that begins meanwhile opens its partial file only once the sweep is over.
   */
  sweep<T>(run: (inUse: (partialName: string) => boolean) => Promise<T>): Promise<T> {
    const running = this.sweeping.then(() => run((name) => this.partialsInUse.has(name)));
    this.sweeping = running.catch(() => {});
    return running;
  }

  /** The agent stops: files are closed, partial files kept (the same sender resumes after a restart). */
  async close(): Promise<void> {
    const open = [...this.uploads.values()];
    for (const upload of open) this.forget(upload);
    await Promise.all(open.map((upload) => upload.queue.then(() => upload.handle.close()).catch(() => {}).then(() => upload.destination.folder.close())));
    await Promise.all([...this.closing.values(), this.sweeping]);
  }
}

/** How much of its file an upload holds, 0 to 1. */
function fractionOf(upload: Upload): number {
  return upload.size === 0 ? 1 : upload.offset / upload.size;
}
