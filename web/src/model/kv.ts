/**
 * The key-value store as the page reads it (protocol §14): the library's `bus.kv(bucket)` for
 * keys, entries, history, writes and the live watch; the buckets asked of the router; values
 * shown as JSON, bytes as their size and first bytes in hex.
 */
import { isBase64Value, fromBase64, type Bus } from 'relais/browser';
import { CONFIG_SCHEMA_BUCKET, KV_ACTIONS, kvErrorOf, type ConfigSchemaAnnouncement, type KvBuckets } from '../../../src/protocol/kv.js';
import { QUERY_TIMEOUT_MS } from './query.js';

export async function listBuckets(bus: Bus): Promise<KvBuckets> {
  try {
    return await bus.request<KvBuckets>(KV_ACTIONS.buckets, {}, { timeout: QUERY_TIMEOUT_MS });
  } catch (error) {
    throw kvErrorOf(error);
  }
}

/** The bytes of a value that is bytes (the library gives a Uint8Array; the wire `{ "$base64": … }`), else undefined. */
export function bytesOf(value: unknown): Uint8Array | undefined {
  if (value instanceof Uint8Array) return value;
  return isBase64Value(value) ? fromBase64(value) : undefined;
}

/** `12 bytes: 89 50 4e 47 …` */
export function bytesPreview(bytes: Uint8Array, max = 32): string {
  const hex = [...bytes.subarray(0, max)].map((byte) => byte.toString(16).padStart(2, '0')).join(' ');
  return `${bytes.length} bytes: ${hex}${bytes.length > max ? ' …' : ''}`;
}

/** A value on one line, for a table cell. */
export function valueBrief(value: unknown, max = 80): string {
  const bytes = bytesOf(value);
  if (bytes) return bytesPreview(bytes, 8);
  const text = JSON.stringify(value) ?? 'null';
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** A value in full: pretty JSON, or the bytes' preview. */
export function valueText(value: unknown): string {
  const bytes = bytesOf(value);
  return bytes ? bytesPreview(bytes, 256) : JSON.stringify(value, null, 2) ?? 'null';
}

/** The configuration schema a client announced (`config-schema/<id>`), or undefined when it announced none. */
export async function announcedSchema(bus: Bus, client: string): Promise<ConfigSchemaAnnouncement | undefined> {
  try {
    const entry = await bus.kv(CONFIG_SCHEMA_BUCKET).get(client);
    const value = entry.value as ConfigSchemaAnnouncement | null;
    return value && typeof value === 'object' && typeof value.schema === 'object' ? value : undefined;
  } catch (error) {
    if ((kvErrorOf(error) as Error).name === 'KeyNotFoundError') return undefined;
    throw error;
  }
}
