/**
 * Sealed payloads in the CLI (protocol §3.6): what this client could not open (not sealed for
 * its key, or no `--sealing-key`) reads `[sealed for <kid>, <kid>…, N bytes]`, whom it is for and
 * the ciphertext's size; none of the ciphertext is printed.
 */
import { sealedFor } from '../protocol/sealing.js';

/** Key ids named before "+N more". */
const KIDS_SHOWN = 3;

/** `[sealed for 0123456789abcdef, fedcba9876543210, 57 bytes]`. */
export function sealedSummary(seal: unknown, size: number): string {
  const kids = sealedFor(seal);
  const named = kids.slice(0, KIDS_SHOWN).join(', ') || 'no key';
  const more = kids.length > KIDS_SHOWN ? ` +${kids.length - KIDS_SHOWN} more` : '';
  return `[sealed for ${named}${more}, ${size} bytes]`;
}
