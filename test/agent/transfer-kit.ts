/** Files for the transfer tests: fresh folders, a fast deterministic pattern, SHA-256. */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Bus } from '../../src/index.js';
import { putChunkPayload, TRANSFER_ACTIONS, transferIdOf, type PutBeginAnswer } from '../../src/agent/transfer-protocol.js';

const BASE = path.join(os.tmpdir(), 'transfer-helper');
export function tempDir(name: string): string {
  fs.mkdirSync(BASE, { recursive: true });
  return fs.mkdtempSync(path.join(BASE, `${name}-`));
}

export function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** A file of `size` bytes of a fast deterministic pattern (no two MiB alike). */
export function patternFile(file: string, size: number): void {
  const block = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < block.length; i += 1) block[i] = (i * 31 + (i >> 10)) & 0xff;
  const fd = fs.openSync(file, 'w');
  try {
    for (let at = 0, n = 0; at < size; at += block.length, n += 1) {
      block.writeUInt32BE(n, 0);
      fs.writeSync(fd, block, 0, Math.min(block.length, size - at));
    }
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Begins sending `source` to `<disk>:<filepath>` on `agentId` and sends its first `chunks`
 * chunks only, as a sender stopped mid-way would: the agent then holds a partial file.
 */
export async function sendFirstChunks(caller: Bus, agentId: string, source: string, disk: string, filepath: string, chunks: number) {
  const bytes = fs.readFileSync(source);
  const hash = sha256(source);
  const transfer = transferIdOf('put', agentId, disk, filepath, bytes.length, hash);
  const begin = await caller.request<PutBeginAnswer>(TRANSFER_ACTIONS.putBegin, { transfer, disk, filepath, size: bytes.length, sha256: hash }, { target: agentId });
  for (let at = begin.offset; at < chunks * begin.chunkBytes; at += begin.chunkBytes) {
    await caller.request(TRANSFER_ACTIONS.putChunk, putChunkPayload({ transfer, generation: begin.generation, offset: at }, bytes.subarray(at, at + begin.chunkBytes)), { target: agentId });
  }
  return { bytes, hash, transfer, begin };
}
