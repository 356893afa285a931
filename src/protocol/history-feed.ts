/**
 * The embedded broker's journal for the router on the wire (protocol §11.1, "The journal"):
 * which messages the router records, the feed the broker sends the router's connection alone,
 * and the router's answer once it has stored what came before. Pure: no I/O.
 */
import { z } from 'zod';
import { BROKER_NOTICE_SOURCE } from './broker-notice.js';
import { notificationMessage } from './messages.js';
import type { Envelope } from './envelope.js';
import { isSystemAction, parseTopic } from './topics.js';

/** The router's client id unless told otherwise (`relais start` runs it under this one). */
export const ROUTER_ID = 'relais-router';
/** Broker → router, on the router's connection only: `{"sync": N}` or `{"gap": {…}, "seq": N}`. */
export const HISTORY_FEED_TOPIC = 'relais/history/feed';
/** Router → broker: `{"through": N}`, everything the feed carried up to N is stored. */
export const HISTORY_STORED_TOPIC = 'relais/history/stored';
/** Who signs the feed's envelopes: the broker, as in its notices (protocol §11.10). */
export const FEED_SOURCE = BROKER_NOTICE_SOURCE;

export type RecordedKind = 'command' | 'response' | 'cancel';

/**
 * What kind of history row a message on `topic` makes: commands, responses and cancels of
 * actions outside `relais/` (the router's and the library's own services are not recorded).
 */
export function recordedKind(topic: string): RecordedKind | undefined {
  const parsed = parseTopic(topic);
  if (parsed.kind !== 'request' && parsed.kind !== 'response' && parsed.kind !== 'cancel') return undefined;
  if (isSystemAction(parsed.action)) return undefined;
  return parsed.kind === 'request' ? 'command' : parsed.kind;
}

const count = z.number().int().nonnegative();
const time = z.number().int().nonnegative();

/** Messages the journal could not keep for the router (it was full), by kind, and when they came. */
export const historyGapSchema = z.object({
  missed: count,
  commands: count,
  responses: count,
  cancels: count,
  /** Epoch ms of the first and the last message missed. */
  from: time,
  to: time,
});
export type HistoryGap = z.infer<typeof historyGapSchema>;

export const feedPayloadSchema = z.union([z.object({ sync: count }).strict(), z.object({ gap: historyGapSchema, seq: count }).strict()]);
export type FeedPayload = z.infer<typeof feedPayloadSchema>;

export const storedPayloadSchema = z.object({ through: count });
export type StoredPayload = z.infer<typeof storedPayloadSchema>;

/** The feed's message to `routerId`. */
export function feedMessage(routerId: string, payload: FeedPayload): Envelope {
  return notificationMessage({ source: FEED_SOURCE, destination: routerId, payload, priority: 'normal' });
}

/** The router's answer: everything up to `through` is stored (0: a hello, nothing yet). */
export function storedMessage(routerId: string, through: number): Envelope {
  return notificationMessage({ source: routerId, destination: FEED_SOURCE, payload: { through } satisfies StoredPayload, priority: 'normal' });
}
