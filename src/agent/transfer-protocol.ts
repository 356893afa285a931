/**
 * File transfer on the bus (Gorgone's SENDFILES; docs/agent.md "File transfer"),
 * the pure part: action names, payload contracts, limits, transfer ids and the names of
 * partial files. No I/O: the agent side is transfer.ts, the requester side transfer-client.ts.
 *
 * A file travels in chunks of bytes, each chunk its own binary command (protocol §3.5) and
 * acknowledged by its answer; a window of chunks is in flight. A `put_chunk`'s body is itself
 * framed by the same rule: `{"transfer","generation","offset","body"}` LF the chunk's bytes; a
 * `get_chunk` is answered with the bytes alone. (Base64 chunks inside JSON, `{ "data":
 * { "$base64" } }`, as agents and clients sent before, are still accepted and understood.) The receiver writes the
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
import { fromBase64 } from '../protocol/binary.js';
import { bodyLengthProblem, frame, isBytes, splitFrame } from '../protocol/framing.js';
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
 * Room a chunk's message needs beside its bytes (header, the chunk's own frame); kept at 3/4 of
 * what is left under the message limit, so that a peer still sending Base64 chunks fits too
 * (protocol §3.4).
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
const generation = z.number().int();

/** A chunk to write: where, and its bytes. */
export interface PutChunk {
  transfer: string;
  generation: number;
  offset: number;
  data: Uint8Array;
}

/** A `put_chunk` payload: the chunk's place, LF, its bytes (the framing rule of protocol §3.5 once more). */
export function putChunkPayload(chunk: Omit<PutChunk, 'data'>, bytes: Uint8Array): Uint8Array {
  return frame(JSON.stringify({ transfer: chunk.transfer, generation: chunk.generation, offset: chunk.offset, body: bytes.length }), bytes);
}

/**
 * A `put_chunk` payload with room for `length` bytes, to be filled in place (the sender reads the
 * file straight into `bytes`): one copy of each chunk fewer than framing bytes already read.
 */
export function putChunkFrame(chunk: Omit<PutChunk, 'data'>, length: number): { payload: Buffer; bytes: Buffer } {
  const header = Buffer.from(`${JSON.stringify({ transfer: chunk.transfer, generation: chunk.generation, offset: chunk.offset, body: length })}\n`);
  const payload = Buffer.allocUnsafe(header.length + length);
  header.copy(payload, 0);
  return { payload, bytes: payload.subarray(header.length) };
}

const chunkPlace = z.strictObject({ transfer: transferId, generation, offset, body: offset });

/** A framed chunk read back; issues name the field, as any payload's (code 2). */
const framedChunk = z.instanceof(Uint8Array).transform((bytes, ctx): PutChunk => {
  const framed = splitFrame(bytes);
  const problem = framed ? bodyLengthProblem(framed) : 'a chunk is {"transfer","generation","offset","body"}, one LF, then its bytes';
  if (problem) {
    ctx.addIssue({ code: 'custom', message: problem });
    return z.NEVER;
  }
  const place = chunkPlace.safeParse(framed!.header);
  if (!place.success) {
    for (const issue of place.error.issues) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
    return z.NEVER;
  }
  return { transfer: place.data.transfer, generation: place.data.generation, offset: place.data.offset, data: framed!.body };
});

/** The Base64 chunk of earlier senders. */
const base64Chunk = z.strictObject({ transfer: transferId, generation, offset, data: base64 }).transform((chunk, ctx): PutChunk => {
  try {
    return { ...chunk, data: fromBase64(chunk.data) };
  } catch (error) {
    ctx.addIssue({ code: 'custom', path: ['data'], message: (error as Error).message });
    return z.NEVER;
  }
});

/** A `get_chunk` answer: the bytes (or the `{ offset, data: { $base64 } }` of earlier agents). */
export function chunkBytesOf(answer: unknown): Uint8Array {
  if (isBytes(answer)) return answer;
  const data = (answer as { data?: unknown } | null)?.data;
  return fromBase64(data as { $base64: string });
}

export const transferSchemas = {
  putBegin: {
    input: z.strictObject({ transfer: transferId, disk: diskId, filepath, size: offset, sha256 }),
    output: z.object({ transfer: transferId, offset, generation: z.number().int(), chunkBytes: z.number().int().positive(), window: z.number().int().positive() }),
  },
  putChunk: {
    // Bytes are a framed chunk, anything else a Base64 one: each with its own issues (a union would name neither).
    input: z.unknown().transform((value, ctx): PutChunk => {
      const parsed = (isBytes(value) ? framedChunk : base64Chunk).safeParse(value);
      if (parsed.success) return parsed.data;
      for (const issue of parsed.error.issues) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
      return z.NEVER;
    }),
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
    output: z.instanceof(Uint8Array),
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

