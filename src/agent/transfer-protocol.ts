/**
 * File transfer on the bus (Gorgone's SENDFILES; docs/agent.md "File transfer"),
 * the pure part: action names, payload contracts, limits, transfer ids and the names of
 * partial files. No I/O: the agent side is transfer.ts, the requester side transfer-client.ts.
 *
 * A file travels in chunks of Base64 (protocol §3.5), each chunk its own command and
 * acknowledged by its answer; a window of chunks is in flight. The receiver writes the
 * chunks in order to a partial file `.relais-partial-<transfer id>` beside the destination,
 * so what it has is always one prefix of the file: its length is the offset to resume from,
 * which `put_begin` answers. The transfer id is derived from where the file goes and what it
 * is (its size and SHA-256), so a sender that starts again, even in a new process, finds
 * the partial file of the same content and not another's.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../protocol/envelope.js';
import { RelaisError, ResponseCode } from '../protocol/errors.js';
import { PARTIAL_PREFIX } from './confine.js';

export const TRANSFER_ACTIONS = {
  putBegin: 'system/files/put_begin',
  putChunk: 'system/files/put_chunk',
  putEnd: 'system/files/put_end',
  getBegin: 'system/files/get_begin',
  getChunk: 'system/files/get_chunk',
  getEnd: 'system/files/get_end',
} as const;

/**
 * Room a chunk's message needs beside its Base64 text (envelope, field names): the bytes of a
 * chunk are at most 3/4 of what is left under the message limit (protocol §3.4).
 */
const ENVELOPE_ROOM = 16 * 1024;
/** The largest chunk whose message stays under DEFAULT_MAX_MESSAGE_BYTES, rounded down to 64 KiB. */
export const MAX_CHUNK_BYTES = Math.floor(((DEFAULT_MAX_MESSAGE_BYTES - ENVELOPE_ROOM) * 3) / 4 / 65536) * 65536;

export const TRANSFER_DEFAULTS = {
  /** Bytes of file per chunk: a quarter of the message limit keeps each message well under it. */
  chunkBytes: 256 * 1024,
  /** Chunks in flight per transfer: the memory of a transfer is about window × chunk on each side. */
  window: 8,
  /** The largest file accepted in either direction. */
  maxFileBytes: 4 * 1024 * 1024 * 1024,
  /** Seconds a transfer that has moved nearly all its file may stay silent; also the age at which a partial file nobody resumes is swept. */
  idleTimeout: 600,
  /** Seconds a transfer that has moved nothing may stay silent (its progress earns it more, up to idleTimeout). */
  stallTimeout: 60,
  /** Transfers open at once on an agent, both directions; more get code 8 (busy). */
  maxTransfers: 16,
  /** Transfers one identity may have open at once on an agent; more get code 8. */
  maxTransfersPerIdentity: 4,
  /** Bytes of uploads (their announced sizes) one identity may have open at once on an agent; more get code 8. */
  maxBytesPerIdentity: 8 * 1024 * 1024 * 1024,
} as const;

/** A transfer id: 32 lowercase hex digits (also the suffix of the partial file's name). */
export const transferId = z.string().regex(/^[0-9a-f]{32}$/, 'must be 32 lowercase hex digits');
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 in lowercase hex');
const diskId = z.string().min(1).max(64);
const filepath = z.string().min(1).max(4096);
const offset = z.number().int().min(0);
const base64 = z.object({ $base64: z.string() });

export const transferSchemas = {
  putBegin: {
    input: z.strictObject({ transfer: transferId, disk: diskId, filepath, size: offset, sha256 }),
    output: z.object({ transfer: transferId, offset, generation: z.number().int(), chunkBytes: z.number().int().positive(), window: z.number().int().positive() }),
  },
  putChunk: {
    input: z.strictObject({ transfer: transferId, generation: z.number().int(), offset, data: base64 }),
    output: z.object({ offset }),
  },
  putEnd: {
    input: z.strictObject({ transfer: transferId, generation: z.number().int() }),
    output: z.object({ status: z.literal('ok'), disk: z.string(), filepath: z.string(), size: offset, sha256 }),
  },
  getBegin: {
    input: z.strictObject({ disk: diskId, filepath }),
    output: z.union([
      z.object({ type: z.literal('file'), transfer: transferId, size: offset, sha256, chunkBytes: z.number().int().positive(), window: z.number().int().positive() }),
      z.object({ type: z.literal('folder'), files: z.array(z.object({ path: z.string(), size: offset })), truncated: z.boolean().optional() }),
    ]),
  },
  getChunk: {
    input: z.strictObject({ transfer: transferId, offset, length: z.number().int().min(1).max(MAX_CHUNK_BYTES) }),
    output: z.object({ offset, data: base64 }),
  },
  getEnd: {
    input: z.strictObject({ transfer: transferId }),
    output: z.object({ status: z.literal('ok') }),
  },
} as const;

export type PutBeginAnswer = z.infer<typeof transferSchemas.putBegin.output>;
export type GetBeginAnswer = z.infer<typeof transferSchemas.getBegin.output>;
export type GetFileAnswer = Extract<GetBeginAnswer, { type: 'file' }>;

/** Why a transfer step was refused (`details.reason`), code 1 like the disks' refusals. */
export type TransferRefusal = 'transfer-conflict' | 'too-large' | 'unknown-transfer' | 'stale-generation' | 'offset-mismatch' | 'incomplete' | 'hash-mismatch' | 'chunk-too-large' | 'invalid-data' | 'changed';

/** A refused transfer step: code 1, `details: { status: 'error', reason, ...facts }` (as DiskError). */
export class TransferError extends RelaisError {
  constructor(message: string, reason: TransferRefusal, facts: Record<string, unknown> = {}) {
    super('TRANSFER_ERROR', message, { responseCode: ResponseCode.ERROR, details: { status: 'error', reason, ...facts } });
  }
}

/** The id of a transfer: the same destination and the same content give the same id (so a restarted sender resumes). */
export function transferIdOf(...parts: Array<string | number>): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 32);
}

/** The name of the partial file of a transfer, beside its destination. */
export function partialNameOf(transfer: string): string {
  return `${PARTIAL_PREFIX}${transfer}`;
}

/**
 * The name of an upload's partial file on the agent: of the requester's identity and its
 * transfer id together, so another identity naming the same transfer id never touches it,
 * and the same sender finds it again after the agent restarts.
 */
export function uploadPartialNameOf(identity: string, transfer: string): string {
  return partialNameOf(transferIdOf('upload', identity, transfer));
}

/** The chunks of a file from `start`: offset and length of each, in order. */
export function* chunksFrom(start: number, size: number, chunkBytes: number): Generator<{ offset: number; length: number }> {
  for (let at = start; at < size; at += chunkBytes) yield { offset: at, length: Math.min(chunkBytes, size - at) };
}

/** `disk:path` of the command line: the disk and the path on it, or undefined when it is not that. */
export function parseRemotePath(text: string): { disk: string; filepath: string } | undefined {
  const colon = text.indexOf(':');
  if (colon <= 0 || colon === text.length - 1) return undefined;
  return { disk: text.slice(0, colon), filepath: text.slice(colon + 1) };
}

