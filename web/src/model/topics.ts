/**
 * Every topic seen under `#` (MQTT Explorer's view): message count, a rate over the last
 * minute, and the last message. Started when the Topics view first opens; the policy may deny
 * `#`, and the view then says so.
 */
import { NotAuthorizedError, type Bus, type Delivery } from 'relais/browser';
import { Store } from '../ui/store.js';

export interface TopicInfo {
  count: number;
  /** Arrival times within the last minute, for the rate. */
  recent: number[];
  lastText: string;
  lastAt: number;
  retained: boolean;
}

export interface TopicsState {
  topics: Record<string, TopicInfo>;
  denied?: string;
  started: boolean;
}

const RATE_WINDOW_MS = 60_000;
/** A bound for a bus with made-up topics: past it, new topics are not added. */
const TOPICS_KEPT = 5000;
/** Longer last messages are cut for display. */
const TEXT_KEPT = 4096;
/** For display only; keeps a BOM visible rather than dropping it. */
const UTF8 = new TextDecoder('utf-8', { ignoreBOM: true });

export const topicsStore = new Store<TopicsState>({ topics: {}, started: false });

let started: Promise<void> | undefined;

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
    const note = ({ topic, retained, ...delivery }: Delivery) => {
      // Any payload, shown as text; one that is no envelope too (protocol §3: a BOM stays visible).
      const text = 'invalid' in delivery ? delivery.text : UTF8.decode(delivery.raw.subarray(0, TEXT_KEPT));
      if (!seen.has(topic)) {
        if (seen.size >= TOPICS_KEPT) return;
        seen.add(topic);
      }
      const known = pending.get(topic) ?? topicsStore.value.topics[topic];
      const now = Date.now();
      const recent = (known?.recent ?? []).filter((at) => at > now - RATE_WINDOW_MS);
      recent.push(now);
      pending.set(topic, { count: (known?.count ?? 0) + 1, recent, lastText: text.slice(0, TEXT_KEPT), lastAt: now, retained });
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

/** Messages per second over the last minute (or since the topic was first seen). */
export function rateOf(info: TopicInfo, now: number): number {
  const recent = info.recent.filter((at) => at > now - RATE_WINDOW_MS);
  return recent.length / (RATE_WINDOW_MS / 1000);
}
