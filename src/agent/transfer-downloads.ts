/**
 * The serving end of `relais fetch` on the agent (docs/agent.md "File transfer"): `get_begin`
 * opens a file of a disk (confined), hashes it and keeps it open for the identity that asked;
 * `get_chunk` reads any range of it, so the fetcher asks for what it still lacks after a lost
 * connection. Another identity's chunks or end of it are refused as unknown. A folder answers
 * the list of its files, each then fetched on its own. A download silent for longer than its
 * progress earns (transfer-limits.ts) is closed and its slot freed.
 */
import { randomBytes, createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { Logger } from 'pino';
import { BusyError } from '../protocol/errors.js';
import { openFolder, openForReading, segmentsOf, statExisting, type Disk } from './confine.js';
import { hashRange } from './disk-io.js';
import { listFolder, type FileEntry } from './disks.js';
import { SilenceClock, type TransferSlots } from './transfer-limits.js';
import { TransferError, type GetBeginAnswer } from './transfer-protocol.js';
import type { TransferSettings } from './transfer.js';

interface Download {
  id: string;
  identity: string;
  filepath: string;
  handle: FileHandle;
  size: number;
  mtimeMs: number;
  reading: number;
  /** The furthest byte read: its progress. */
  reached: number;
  clock: SilenceClock;
  release: () => void;
}

export class Downloads {
  private readonly downloads = new Map<string, Download>();

  constructor(
    private readonly settings: TransferSettings & { maxListEntries: number },
    private readonly logger: Logger,
    private readonly slots: TransferSlots,
  ) {}

  async begin(disk: Disk, filepath: string, identity: string, signal: AbortSignal): Promise<GetBeginAnswer> {
    if ((await statExisting(disk, filepath)).isDirectory()) {
      const relative = segmentsOf(disk, filepath).join('/');
      const entries: FileEntry[] = [];
      const folder = await openFolder(disk, filepath);
      const truncated = await listFolder(folder, relative, entries, this.settings.maxListEntries).finally(() => folder.close());
      const files = entries.filter((entry) => entry.type === 'file').map((entry) => ({ path: entry.path.slice(relative.length + 1), size: entry.size }));
      return { type: 'folder', files, ...(truncated && { truncated: true }) };
    }
    const release = this.slots.take(identity, 0);
    let opened: Awaited<ReturnType<typeof openForReading>>;
    try {
      opened = await openForReading(disk, filepath);
    } catch (error) {
      release();
      throw error;
    }
    try {
      if (opened.size > this.settings.maxFileBytes) {
        throw new TransferError(`${filepath} is ${opened.size} bytes, over this agent's limit of ${this.settings.maxFileBytes} (services.transfer.maxFileBytes)`, 'too-large', { limit: this.settings.maxFileBytes });
      }
      const { mtimeMs } = await opened.handle.stat();
      const sha256 = (await hashRange(opened.handle, opened.size, createHash('sha256'), signal)).digest('hex');
      const download: Download = {
        id: randomBytes(16).toString('hex'),
        identity,
        filepath,
        handle: opened.handle,
        size: opened.size,
        mtimeMs,
        reading: 0,
        reached: 0,
        release,
        clock: new SilenceClock(this.settings, (allowedMs) => {
          this.logger.warn({ transfer: download.id, filepath, requester: identity, reached: download.reached, size: download.size, silentMs: allowedMs }, 'download abandoned: silent longer than its progress allows; its slot is freed');
          void this.close_(download);
        }),
      };
      this.downloads.set(download.id, download);
      download.clock.restart(0);
      this.logger.info({ transfer: download.id, disk: disk.id, filepath, size: opened.size, requester: identity }, 'download started');
      return { type: 'file', transfer: download.id, size: opened.size, sha256, chunkBytes: this.settings.chunkBytes, window: this.settings.window };
    } catch (error) {
      release();
      await opened.handle.close().catch(() => {});
      throw error;
    }
  }

  async chunk(request: { transfer: string; offset: number; length: number }, identity: string): Promise<Uint8Array> {
    const download = this.named(request.transfer, identity);
    const { offset, length } = request;
    if (length > this.settings.chunkBytes) throw new TransferError(`a chunk of ${length} bytes is over ${this.settings.chunkBytes} (services.transfer.chunkBytes)`, 'chunk-too-large');
    if (offset + length > download.size) throw new TransferError(`${offset} + ${length} is past the end of ${download.filepath} (${download.size} bytes)`, 'offset-mismatch', { size: download.size });
    if (download.reading >= this.settings.window * 2) throw new BusyError(`transfer ${download.id} has ${download.reading} chunks being read already`);
    download.reading += 1;
    try {
      const stat = await download.handle.stat();
      if (stat.size !== download.size || stat.mtimeMs !== download.mtimeMs) throw new TransferError(`${download.filepath} changed since the transfer began: begin it again`, 'changed');
      const bytes = Buffer.allocUnsafe(length);
      let read = 0;
      while (read < length) {
        const { bytesRead } = await download.handle.read(bytes, read, length - read, offset + read);
        if (bytesRead === 0) throw new TransferError(`${download.filepath} ended before ${offset + length}: begin it again`, 'changed');
        read += bytesRead;
      }
      // Progress: the silence it may keep starts again, longer the further it is.
      download.reached = Math.max(download.reached, offset + length);
      download.clock.restart(download.size === 0 ? 1 : download.reached / download.size);
      return bytes;
    } finally {
      download.reading -= 1;
    }
  }

  /** Ends a download of `identity`; ending one that is not (or no longer) open is fine, and never ends another identity's. */
  async end(transfer: string, identity: string): Promise<{ status: 'ok' }> {
    const download = this.downloads.get(transfer);
    if (download?.identity === identity) await this.close_(download);
    return { status: 'ok' };
  }

  /** The download `transfer` of `identity`; another identity's is as unknown as one that never was. */
  private named(transfer: string, identity: string): Download {
    const download = this.downloads.get(transfer);
    if (!download || download.identity !== identity) throw new TransferError(`no download ${transfer} of yours is open on this agent (it ended, or was silent too long): begin it again`, 'unknown-transfer');
    return download;
  }

  private async close_(download: Download): Promise<void> {
    download.clock.stop();
    download.release();
    this.downloads.delete(download.id);
    await download.handle.close().catch(() => {});
  }

  async close(): Promise<void> {
    await Promise.all([...this.downloads.values()].map((download) => this.close_(download)));
  }
}
