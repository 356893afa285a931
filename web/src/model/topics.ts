/**
 * Every topic seen under `#` (MQTT Explorer's view): message count, a rate over the last
 * minute, and its last messages, each read as a Relais envelope when it is one (protocol §3) so
 * that the view shows the payload first and the envelope on demand. Started when the Topics
 * view first opens; the policy may deny `#`, and the view then says so.
 */
import { NotAuthorizedError, type Bus, type Delivery } from 'relais/browser';
import { Store } from '../ui/store.js';
import { previewOf, SealedPreview } from '../ui/format.js';
import { SEAL_MEMBER, sealedFor } from '../../../src/protocol/sealing.js';

export interface TopicMessage {
  at: number;
  /** Delivered from the broker's retained store (old), rather than live. */
  retained: boolean;
  qos: 0 | 1;
  /** The message's size in bytes. */
  size: number;
  /** The envelope's fields but its payload, when the message is one (protocol §3). */
  envelope?: Record<string, unknown>;
  /** The envelope's payload; for a message that is no envelope, its JSON or its text. */
  payload: unknown;
  /** Why it is no envelope, when it is not (a plain MQTT message is not wrong). */
  invalid?: string;
  /** An empty message: on a retained topic, the one that clears it. */
  empty: boolean;
}

export interface TopicInfo {
  count: number;
  /** Arrival times within the last minute, for the rate. */
  recent: number[];
  /** Newest last, at most MESSAGES_KEPT. */
  messages: TopicMessage[];
  lastAt: number;
}

export interface TopicsState {
  topics: Record<string, TopicInfo>;
  denied?: string;
  started: boolean;
}

const RATE_WINDOW_MS = 60_000;
/** A bound for a bus with made-up topics: past it, new topics are not added. */
const TOPICS_KEPT = 5000;
/** The last messages kept per topic, for the history and its diffs. */
export const MESSAGES_KEPT = 20;
/** Longer messages are cut for display. */
const TEXT_KEPT = 4096;
/** For display only; keeps a BOM visible rather than dropping it. */
const UTF8 = new TextDecoder('utf-8', { ignoreBOM: true });

export const topicsStore = new Store<TopicsState>({ topics: {}, started: false });

let started: Promise<void> | undefined;
/**
 * Called with each message as it arrives (the publish panel waits for its own echo); a listener
 * answering true marks the message retained: the page's own retained publish, which the broker
 * forwards with the flag cleared (MQTT 3.1.1 §3.3.1.3: the flag is set only for a retained copy
 * sent on a new subscription).
 */
const arrivals = new Set<(topic: string, raw: Uint8Array) => boolean>();

export function watchTopics(bus: Bus): Promise<void> {
  started ??= (async () => {
    const pending = new Map<string, TopicInfo>();
    const seen = new Set<string>();
    let scheduled = false;
    const flush = () => {
      scheduled = false;
      topicsStore.update((state) => ({ ...state, topics: { ...state.topics, ...Object.fromEntries(pending) } }));
      pending.clear();
    };
    const note = (delivery: Delivery) => {
      const { topic } = delivery;
      if (!seen.has(topic)) {
        if (seen.size >= TOPICS_KEPT) return;
        seen.add(topic);
      }
      let ownRetained = false;
      for (const listener of [...arrivals]) ownRetained = listener(topic, delivery.raw) || ownRetained;
      const message = readMessage(delivery, ownRetained);
      const known = pending.get(topic) ?? topicsStore.value.topics[topic];
      const recent = (known?.recent ?? []).filter((at) => at > message.at - RATE_WINDOW_MS);
      recent.push(message.at);
      pending.set(topic, { count: (known?.count ?? 0) + 1, recent, messages: [...(known?.messages ?? []), message].slice(-MESSAGES_KEPT), lastAt: message.at });
      // One render per burst, not per message.
      if (!scheduled) {
        scheduled = true;
        setTimeout(flush, 250);
      }
    };
    try {
      const subscription = await bus.subscribe('#', { includeInvalid: true });
      topicsStore.set({ ...topicsStore.value, started: true });
      void (async () => {
        for await (const delivery of subscription) note(delivery);
      })();
    } catch (error) {
      if (!(error instanceof NotAuthorizedError)) throw error;
      topicsStore.set({ ...topicsStore.value, started: true, denied: 'The policy does not let this identity subscribe to # (every topic): the tree stays empty. Ask for a role that may read #.' });
    }
  })();
  return started;
}

function readMessage(delivery: Delivery, ownRetained: boolean): TopicMessage {
  const base = { at: Date.now(), retained: delivery.retained || (ownRetained && delivery.raw.length > 0), qos: delivery.qos, size: delivery.raw.length, empty: delivery.raw.length === 0 };
  if ('invalid' in delivery) {
    // Any payload, shown as text (protocol §3: a BOM stays visible); JSON when it parses.
    const text = delivery.text.slice(0, TEXT_KEPT);
    return { ...base, payload: parsedOrText(text), invalid: delivery.invalid };
  }
  const { payload, ...envelope } = delivery.envelope as unknown as Record<string, unknown>;
  // A sealed message (protocol §3.6): whom it is for and its size; none of its ciphertext is shown.
  if (payload instanceof Uint8Array && envelope[SEAL_MEMBER] !== undefined) return { ...base, envelope, payload: new SealedPreview(sealedFor(envelope[SEAL_MEMBER]), payload.length) };
  // A binary message (protocol §3.5): its size and first bytes, shown in hex.
  if (payload instanceof Uint8Array) return { ...base, envelope, payload: previewOf(payload) };
  return { ...base, envelope, payload: delivery.raw.length > TEXT_KEPT ? `${UTF8.decode(delivery.raw.subarray(0, TEXT_KEPT))}…` : payload };
}

function parsedOrText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The last message of a topic. */
export function lastOf(info: TopicInfo): TopicMessage {
  return info.messages[info.messages.length - 1]!;
}

/**
 * Whether the broker holds a retained message on the topic, as far as this page saw: the last
 * message came from the retained store, or its latest arrival was live and an earlier one
 * retained (a retained topic updated live; MQTT 3.1.1 clears the flag on live deliveries), until
 * an empty message clears it.
 */
export function holdsRetained(info: TopicInfo): boolean {
  for (let at = info.messages.length - 1; at >= 0; at--) {
    const message = info.messages[at]!;
    if (message.empty) return false;
    if (message.retained) return true;
  }
  return false;
}

/** Messages per second over the last minute (or since the topic was first seen). */
export function rateOf(info: TopicInfo, now: number): number {
  const recent = info.recent.filter((at) => at > now - RATE_WINDOW_MS);
  return recent.length / (RATE_WINDOW_MS / 1000);
}

/**
 * Waits for a message on `topic` that `matches`, up to `timeoutMs`: the page's own publish
 * coming back through its `#` subscription is how it knows the broker took it (MQTT 3.1.1 has
 * no negative acknowledgement: a refused PUBLISH is acknowledged and dropped, protocol §5.3).
 */
export function waitForArrival(topic: string, body: string, timeoutMs: number, retained = false): Promise<boolean> {
  const expected = new TextEncoder().encode(body);
  return new Promise((resolve) => {
    const listener = (arrived: string, raw: Uint8Array) => {
      if (arrived !== topic || raw.length !== expected.length || !raw.every((byte, at) => byte === expected[at])) return false;
      done(true);
      return retained;
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    const done = (seen: boolean) => {
      clearTimeout(timer);
      arrivals.delete(listener);
      resolve(seen);
    };
    arrivals.add(listener);
  });
}
