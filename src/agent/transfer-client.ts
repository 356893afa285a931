/**
 * The requester's side of file transfer (docs/agent.md "File transfer"): `sendPath` and
 * `fetchPath` move a file or a folder's files to or from an agent, a window of chunks in
 * flight, and resume after a lost connection from what the receiving end already has. Used by
 * `relais send` / `relais fetch` (src/cli/transfer.ts), the tests and the benchmark.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import type { Bus } from '../client/index.js';
import { BusyError, CancelledError, HandlerGoneError, NoHandlerError, NotSentError, RemoteError, TimeoutError } from '../protocol/errors.js';
import { hashRange } from './disk-io.js';
import { LostConnection, moveWindow, type ChunkRequest } from './transfer-window.js';
import { chunkBytesOf, partialNameOf, putChunkFrame, TRANSFER_ACTIONS, transferIdOf, TransferError, type GetBeginAnswer, type GetFileAnswer, type PutBeginAnswer } from './transfer-protocol.js';

export interface TransferOptions {
  /** Each chunk's request gives up after this many ms (then the transfer resumes). Default 30 000. */
  chunkTimeout?: number;
  /** Attempts in a row that move no byte before giving up. Default 20. */
  maxAttempts?: number;
  /** How long to wait for the connection to come back, in ms. Default 300 000. */
  reconnectTimeout?: number;
  signal?: AbortSignal;
  /** Each request to an agent on a site whose link is down waits this long (ms) for the link before failing (protocol §13.4). */
  waitForSite?: number;
  /** Files known and bytes moved so far (of every file), each time a chunk is acknowledged. */
  onProgress?(done: number, total: number): void;
  /** A file's transfer continues from `offset` (> 0: what the receiving end already had). */
  onResume?(file: string, offset: number, attempt: number): void;
  /** An attempt failed with `error`; the transfer goes on if it may (a lost connection, a refused chunk). */
  onRetry?(error: unknown): void;
  /** A file is complete and checked. */
  onFile?(file: string, size: number, sha256: string): void;
}

export interface TransferSummary {
  files: Array<{ path: string; size: number; sha256: string }>;
  bytes: number;
  /** Resumptions: for each, the file and the offset it continued from. */
  resumed: Array<{ file: string; offset: number }>;
}

const DEFAULTS = { chunkTimeout: 30_000, maxAttempts: 20, reconnectTimeout: 300_000 };
/** get_begin hashes the whole file and put_end syncs it (and a resumed put_begin hashes the partial file): minutes for gigabytes on a slow disk. */
const SLOW_STEP_TIMEOUT = 600_000;

/** Sends a local file, or every regular file under a local folder, to `disk:filepath` on `agent`. */
export async function sendPath(bus: Bus, agent: string, local: string, disk: string, filepath: string, options: TransferOptions = {}): Promise<TransferSummary> {
  const stat = await fs.promises.stat(local);
  const plan = stat.isDirectory()
    ? (await filesUnder(local)).map((file) => ({ local: path.join(local, file.relative), remote: joinRemote(filepath, file.relative), size: file.size }))
    : [{ local, remote: filepath.endsWith('/') ? filepath + path.basename(local) : filepath, size: stat.size }];
  const job = new Job(plan.reduce((sum, file) => sum + file.size, 0), options);
  for (const file of plan) await sendFile(bus, agent, file.local, disk, file.remote, job);
  return job.summary;
}

/** Fetches `disk:filepath` of `agent` (a file, or a folder's files) to `local`. */
export async function fetchPath(bus: Bus, agent: string, disk: string, filepath: string, local: string, options: TransferOptions = {}): Promise<TransferSummary> {
  // As send's put_begin: an agent that goes away while it hashes the file is waited for; one not there at all is the answer.
  const first = await withResumption(bus, new Job(0, options), agent, TRANSFER_ACTIONS.getBegin, false, () =>
    bus.request<GetBeginAnswer>(TRANSFER_ACTIONS.getBegin, { disk, filepath }, { target: agent, waitForSite: options.waitForSite, signal: options.signal, timeout: SLOW_STEP_TIMEOUT }),
  );
  if (first.type === 'folder') {
    // The paths come from the agent: none may lead out of the local folder.
    for (const file of first.files) {
      const segments = file.path.split('/');
      if (path.isAbsolute(file.path) || segments.some((segment) => segment === '..' || segment === '' || segment.includes('\\') || segment.includes('\0'))) {
        throw new TransferError(`${agent} listed ${JSON.stringify(file.path)} in ${disk}:${filepath}: not a relative path inside the folder; nothing fetched`, 'invalid-data');
      }
    }
    const job = new Job(first.files.reduce((sum, file) => sum + file.size, 0), options);
    for (const file of first.files) await fetchFile(bus, agent, disk, joinRemote(filepath, file.path), path.join(local, ...file.path.split('/')), job);
    return job.summary;
  }
  const isFolder = (await fs.promises.stat(local).catch(() => undefined))?.isDirectory();
  const target = isFolder ? path.join(local, path.posix.basename(filepath)) : local;
  const job = new Job(first.size, options);
  await fetchFile(bus, agent, disk, filepath, target, job, first);
  return job.summary;
}

/** What a transfer of several files shares: the totals, the options, the summary. */
class Job {
  done = 0;
  readonly summary: TransferSummary = { files: [], bytes: 0, resumed: [] };
  readonly options: Required<Pick<TransferOptions, 'chunkTimeout' | 'maxAttempts' | 'reconnectTimeout'>> & TransferOptions;
  constructor(readonly total: number, options: TransferOptions) {
    this.options = { ...DEFAULTS, ...options };
  }
  moved(bytes: number): void {
    this.done += bytes;
    this.summary.bytes += bytes;
    this.options.onProgress?.(this.done, this.total);
  }
  resumed(file: string, offset: number, attempt: number): void {
    this.summary.resumed.push({ file, offset });
    this.options.onResume?.(file, offset, attempt);
  }
  finished(file: string, size: number, sha256: string): void {
    this.summary.files.push({ path: file, size, sha256 });
    this.options.onFile?.(file, size, sha256);
  }
}

async function sendFile(bus: Bus, agent: string, local: string, disk: string, filepath: string, job: Job): Promise<void> {
  const source = await fs.promises.open(local, 'r');
  try {
    const { size } = await source.stat();
    const sha256 = (await hashRange(source, size, createHash('sha256'), job.options.signal)).digest('hex');
    const transfer = transferIdOf('put', agent, disk, filepath, size, sha256);
    const counted = job.done;
    await withResumption(bus, job, agent, TRANSFER_ACTIONS.putBegin, false, async (attempt, began) => {
      const begin = await bus.request<PutBeginAnswer>(TRANSFER_ACTIONS.putBegin, { transfer, disk, filepath, size, sha256 }, { target: agent, waitForSite: job.options.waitForSite, signal: job.options.signal, timeout: SLOW_STEP_TIMEOUT });
      began();
      job.done = counted + begin.offset;
      if (attempt > 0 || begin.offset > 0) job.resumed(filepath, begin.offset, attempt);
      // Reads one after the other, so the chunks are sent in order: the agent writes them in the order they come.
      let reading: Promise<unknown> = Promise.resolve();
      const chunkOf: ChunkRequest = async ({ offset, length }, signal) => {
        // Read straight into the chunk's frame (protocol §3.5): no copy of the bytes before the message's own.
        const { payload, bytes } = putChunkFrame({ transfer, generation: begin.generation, offset }, length);
        await (reading = reading.then(() => source.read(bytes, 0, length, offset)));
        await bus.request(TRANSFER_ACTIONS.putChunk, payload, { target: agent, waitForSite: job.options.waitForSite, signal, timeout: job.options.chunkTimeout });
        return length;
      };
      await moveWindow(bus, begin.offset, size, begin, chunkOf, (bytes) => job.moved(bytes), job.options.signal);
      await bus.request(TRANSFER_ACTIONS.putEnd, { transfer, generation: begin.generation }, { target: agent, waitForSite: job.options.waitForSite, signal: job.options.signal, timeout: SLOW_STEP_TIMEOUT });
      return true;
    });
    job.finished(filepath, size, sha256);
  } finally {
    await source.close();
  }
}

async function fetchFile(bus: Bus, agent: string, disk: string, filepath: string, local: string, job: Job, first?: GetFileAnswer): Promise<void> {
  await fs.promises.mkdir(path.dirname(local), { recursive: true });
  let known = first;
  let partial: fs.promises.FileHandle | undefined;
  let partialPath = '';
  const counted = job.done;
  let result: { size: number; sha256: string } | undefined;
  try {
    // Begun already: fetchPath's get_begin was answered (and this file's comes from the same agent).
    await withResumption(bus, job, agent, TRANSFER_ACTIONS.getBegin, true, async (attempt) => {
      const begin = attempt === 0 && known ? known : await bus.request<GetBeginAnswer>(TRANSFER_ACTIONS.getBegin, { disk, filepath }, { target: agent, waitForSite: job.options.waitForSite, signal: job.options.signal, timeout: SLOW_STEP_TIMEOUT });
      if (begin.type !== 'file') throw new TransferError(`${disk}:${filepath} became a folder during the transfer`, 'changed');
      known = begin;
      const id = transferIdOf('get', agent, disk, filepath, begin.size, begin.sha256);
      if (path.basename(partialPath) !== partialNameOf(id)) {
        // The file changed (another id): what was kept of the old one is of no use.
        if (partial) await discard(partial, partialPath);
        partialPath = path.join(path.dirname(local), partialNameOf(id));
        partial = await fs.promises.open(partialPath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o640);
      }
      let offset = (await partial!.stat()).size;
      if (offset > begin.size) await partial!.truncate((offset = 0));
      job.done = counted + offset;
      if (attempt > 0 || offset > 0) job.resumed(filepath, offset, attempt);
      const writer = partial!;
      const chunkOf: ChunkRequest = async ({ offset: at, length }, signal) => {
        const answer = await bus.request(TRANSFER_ACTIONS.getChunk, { transfer: begin.transfer, offset: at, length }, { target: agent, waitForSite: job.options.waitForSite, signal, timeout: job.options.chunkTimeout });
        const bytes = chunkBytesOf(answer);
        return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      };
      // Chunks are written in order, as they are consumed: the partial file is always a prefix of the file.
      await moveWindow(bus, offset, begin.size, begin, chunkOf, (bytes) => job.moved(bytes), job.options.signal, async (bytes, at) => {
        await writer.write(bytes, 0, bytes.length, at);
      });
      void bus.request(TRANSFER_ACTIONS.getEnd, { transfer: begin.transfer }, { target: agent }).catch(() => {});
      return true;
    });
    const { size, sha256 } = known!;
    const received = (await hashRange(partial!, size, createHash('sha256'))).digest('hex');
    if (received !== sha256) {
      throw new TransferError(`${disk}:${filepath}: the SHA-256 of what was received (${received}) is not the agent's (${sha256}); the partial file is removed`, 'hash-mismatch');
    }
    await partial!.sync();
    await partial!.close();
    partial = undefined;
    await fs.promises.rename(partialPath, local);
    result = { size, sha256 };
  } catch (error) {
    if (partial && error instanceof TransferError) await discard(partial, partialPath);
    throw error;
  } finally {
    await partial?.close().catch(() => {});
  }
  job.finished(filepath, result.size, result.sha256);
}

async function discard(handle: fs.promises.FileHandle, file: string): Promise<void> {
  await handle.close().catch(() => {});
  await fs.promises.unlink(file).catch(() => {});
}

/**
 * Runs `attempt` until it completes: after a lost connection, a refused chunk or the agent
 * going away (once the transfer had begun: `begun`, or `began()` called by the attempt, or an
 * attempt before) it waits for the connection and for the agent to serve `begin` again, then
 * runs again (which begins again and continues from the receiving end's offset). Gives up
 * after `maxAttempts` attempts in a row that moved nothing. The same for send and fetch.
 */
async function withResumption<T>(bus: Bus, job: Job, agent: string, begin: string, begun: boolean, attempt: (count: number, began: () => void) => Promise<T>): Promise<T> {
  let idle = 0;
  const began = () => void (begun = true);
  for (let count = 0; ; count += 1) {
    const before = job.done;
    try {
      return await attempt(count, began);
    } catch (error) {
      if (!resumable(error, begun || count > 0) || job.options.signal?.aborted) throw error;
      if (job.done === before && ++idle >= job.options.maxAttempts) throw error;
      if (job.done > before) idle = 0;
      job.options.onRetry?.(error);
      const { reconnectTimeout: timeout, signal } = job.options;
      await online(bus, timeout, signal);
      await bus.waitForHandler(begin, { target: agent, timeout, ...(signal && { signal }) });
    }
  }
}

/** Errors after which the transfer goes on from where the receiving end is. An agent not there before the transfer began is an answer, not a lost connection. */
function resumable(error: unknown, begun: boolean): boolean {
  if (error instanceof TimeoutError || error instanceof HandlerGoneError || error instanceof NotSentError || error instanceof BusyError || error instanceof LostConnection) return true;
  if (error instanceof NoHandlerError) return begun;
  if (error instanceof CancelledError) return false;
  const reason = error instanceof RemoteError ? (error.details as { reason?: string } | undefined)?.reason : undefined;
  if (error instanceof RemoteError && error.responseCode === 8) return true; // busy
  return reason === 'offset-mismatch' || reason === 'stale-generation' || reason === 'unknown-transfer' || reason === 'incomplete';
}

async function online(bus: Bus, timeout: number, signal?: AbortSignal): Promise<void> {
  if (bus.connected) return;
  const wait = AbortSignal.any([AbortSignal.timeout(timeout), ...(signal ? [signal] : [])]);
  await once(bus, 'online', { signal: wait });
}

function joinRemote(base: string, relative: string): string {
  return `${base.replace(/\/+$/, '')}/${relative}`;
}

/** The regular files under a folder, sorted, as paths relative to it with `/` (symlinks to files included). */
async function filesUnder(root: string): Promise<Array<{ relative: string; size: number }>> {
  const found: Array<{ relative: string; size: number }> = [];
  const walk = async (folder: string, prefix: string) => {
    const entries = await fs.promises.readdir(folder, { withFileTypes: true });
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      const full = path.join(folder, entry.name);
      const relative = prefix ? `${prefix}/${entry.name}` : entry.name;
      if (entry.isDirectory()) await walk(full, relative);
      else if (entry.isFile() || entry.isSymbolicLink()) {
        const stat = await fs.promises.stat(full).catch(() => undefined);
        if (stat?.isFile()) found.push({ relative, size: stat.size });
      }
    }
  };
  await walk(root, '');
  return found;
}
