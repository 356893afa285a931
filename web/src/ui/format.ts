/** How times, durations and payloads read on the page. */

export function clock(ms: number | undefined): string {
  if (ms === undefined) return '—';
  const date = new Date(ms);
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

export function dateTime(ms: number | undefined): string {
  if (ms === undefined) return '—';
  const date = new Date(ms);
  return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, '0')}-${String(date.getDate()).padStart(2, '0')} ${clock(ms)}`;
}

export function ago(ms: number | undefined, now: number): string {
  if (ms === undefined) return '—';
  const seconds = Math.max(0, Math.round((now - ms) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86_400)} d ago`;
}

export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/**
 * What the page keeps of a binary payload (protocol §3.5): its first bytes and its size, so a
 * large body is not held whole to show a preview.
 */
export class BytesPreview {
  constructor(
    readonly head: Uint8Array,
    readonly size: number,
  ) {}
}

/** Bytes kept for a preview: four lines of 16. */
export const PREVIEW_BYTES = 64;

export function previewOf(bytes: Uint8Array): BytesPreview {
  return new BytesPreview(bytes.slice(0, PREVIEW_BYTES), bytes.length);
}

/** `3 000 bytes: 0a 00 ff …` — the size and the first bytes in hex, as the page shows a binary payload. */
export function hexPreview(preview: BytesPreview, max = PREVIEW_BYTES): string {
  const shown = Array.from(preview.head.subarray(0, max), (byte) => byte.toString(16).padStart(2, '0')).join(' ');
  return `${preview.size.toLocaleString('en').replace(/,/g, ' ')} bytes: ${shown}${preview.size > Math.min(max, preview.head.length) ? ' …' : ''}`;
}

/** The preview of a history row's binary payload (protocol §11.1): its size, digest, and first bytes from its Base64. */
export function storedBytesPreview(data: string, size: number, sha256: string, max = 32): string {
  let head: Uint8Array;
  try {
    const text = atob(data.slice(0, Math.ceil(max / 3) * 4));
    head = Uint8Array.from(text, (char) => char.charCodeAt(0));
  } catch {
    head = new Uint8Array(0);
  }
  return `${hexPreview(new BytesPreview(head.subarray(0, max), size), max)} (sha256 ${sha256.slice(0, 16)}…)`;
}

/**
 * A sealed payload (protocol §3.6) as the page knows it: the key ids it is sealed for and its
 * size. The page holds no sealing key: it never opens one, and shows none of its bytes.
 */
export class SealedPreview {
  constructor(
    readonly kids: readonly string[],
    readonly size: number,
  ) {}
}

/** Key ids named before "+N more". */
const KIDS_SHOWN = 3;

/** `🔒 sealed for 0123456789abcdef, fedcba9876543210 · 57 bytes`: whom a sealed payload is for, and its size. */
export function sealedText(preview: SealedPreview): string {
  const named = preview.kids.slice(0, KIDS_SHOWN).join(', ');
  const more = preview.kids.length > KIDS_SHOWN ? ` +${preview.kids.length - KIDS_SHOWN} more` : '';
  return `🔒 sealed for ${named || 'no key'}${more} · ${preview.size.toLocaleString('en').replace(/,/g, ' ')} bytes`;
}

/** A payload on one line, cut for a table cell. */
export function brief(value: unknown, max = 160): string {
  if (value instanceof Uint8Array) value = previewOf(value);
  const text =
    value instanceof SealedPreview ? sealedText(value) : value instanceof BytesPreview ? hexPreview(value, 16) : typeof value === 'string' ? value : JSON.stringify(value);
  if (text === undefined) return '';
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function pretty(value: unknown): string {
  if (value instanceof Uint8Array) value = previewOf(value);
  if (value instanceof BytesPreview) return hexPreview(value);
  if (value instanceof SealedPreview) return sealedText(value);
  return typeof value === 'string' ? value : (JSON.stringify(value, null, 2) ?? '');
}
