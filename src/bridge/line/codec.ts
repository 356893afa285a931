/**
 * The PSEC MVP message on a line (docs/bridges.md, "Line protocol"): one JSON object per line,
 * `{"type": "notification"|"commande"|"reponse", "source", "destination", "payload"}`, with
 * `destination` a domain name or `tous`. Payloads as the MVP library writes them: a commande
 * `{"commande", "arguments"}`, a reponse `{"commande", "data"}`, a notification
 * `{"categorie"?, "evenement", "data"}`. Pure: no I/O (docs/bridges.md, "Line protocol").
 */
import { z } from 'zod';

export const MVP_TYPES = ['notification', 'commande', 'reponse'] as const;
export type MvpType = (typeof MVP_TYPES)[number];

/** `tous` is the MVP's "every domain", the bus's `*` (protocol §3.1). */
export const MVP_EVERYONE = 'tous';

const name = z.string().min(1).max(256);
const mvpMessageSchema = z.object({
  type: z.enum(MVP_TYPES),
  source: name,
  destination: name,
  payload: z.unknown(),
});

const commandePayload = z.object({ commande: name, arguments: z.unknown().optional() });
const reponsePayload = z.object({ commande: name, data: z.unknown().optional(), erreur: z.unknown().optional() });
const notificationPayload = z.object({ categorie: name.optional(), evenement: name, data: z.unknown().optional() });

export type MvpMessage =
  | { type: 'commande'; source: string; destination: string; payload: { commande: string; arguments?: unknown } }
  | { type: 'reponse'; source: string; destination: string; payload: { commande: string; data?: unknown; erreur?: unknown } }
  | { type: 'notification'; source: string; destination: string; payload: { categorie?: string; evenement: string; data?: unknown } };

export type ParsedLine = { ok: true; message: MvpMessage } | { ok: false; problem: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Reads one line (without its newline). Never throws: a bad line comes back with what is wrong with it. */
export function parseLine(line: Uint8Array): ParsedLine {
  let text: string;
  try {
    text = utf8.decode(line);
  } catch {
    return { ok: false, problem: 'not valid UTF-8' };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, problem: `not JSON: ${(error as Error).message}` };
  }
  const envelope = mvpMessageSchema.safeParse(value);
  if (!envelope.success) return { ok: false, problem: describe(envelope.error) };
  const payloadSchema = { commande: commandePayload, reponse: reponsePayload, notification: notificationPayload }[envelope.data.type];
  const payload = payloadSchema.safeParse(envelope.data.payload);
  if (!payload.success) return { ok: false, problem: describe(payload.error, 'payload.') };
  return { ok: true, message: { ...envelope.data, payload: payload.data } as MvpMessage };
}

/** One line, newline included: the MVP peer reads up to it. JSON never holds a raw newline. */
export function encodeLine(message: MvpMessage): string {
  return `${JSON.stringify(message)}\n`;
}

/** Bus `*` ↔ MVP `tous`; ids are the same on both sides. */
export function toBusDestination(destination: string): string {
  return destination === MVP_EVERYONE ? '*' : destination;
}

export function toMvpDestination(destination: string): string {
  return destination === '*' ? MVP_EVERYONE : destination;
}

function describe(error: z.ZodError, prefix = ''): string {
  return error.issues.map((issue) => `field '${prefix}${issue.path.join('.')}': ${issue.message}`).join('; ');
}
