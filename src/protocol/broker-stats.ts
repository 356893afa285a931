/**
 * The embedded broker's statistics on the wire (protocol §11.9): the action that answers them
 * and what the answer holds. Pure: no I/O.
 */
import { z } from 'zod';

export const BROKER_STATS_ACTION = 'relais/broker/stats/get';

/** Rules listed in `denials.topRules` unless the request asks for another count (`{"top": N}`, 1–100). */
export const DEFAULT_TOP_RULES = 10;
export const MAX_TOP_RULES = 100;
/** How often the broker samples its counts: per-second figures cover one such interval. */
export const BROKER_SAMPLE_EVERY_MS = 10_000;
/** How far back `{"since": …}` reaches: the samples of the last hour are kept. */
export const BROKER_SAMPLES_KEPT_MS = 60 * 60 * 1000;

/** Totals `in` and `out`, and per second (`inPerSecond`, `outPerSecond`) over an interval. */
export interface InOut {
  in: number;
  out: number;
  inPerSecond: number;
  outPerSecond: number;
}

/** Denials by kind (no rules: those are totals since the start only). */
export interface DenialKinds {
  connect: number;
  subscribe: number;
  publish: number;
  source: number;
}

export interface BrokerStats {
  /** When the broker started, and the time this answer was made (epoch ms). */
  startedAt: number;
  now: number;
  uptimeSeconds: number;
  connections: {
    /** MQTT connections open now (in-process clients included: the router, this service). */
    open: number;
  };
  /** Denials since the start; `null` when security is off (nothing is checked). */
  denials: {
    connect: number;
    subscribe: number;
    publish: number;
    /** Publishes refused because the envelope's `source` was not the sender's identity; also counted in `publish`. */
    source: number;
    /** The rules that denied most, most first (ties by name). */
    topRules: Array<{ rule: string; count: number }>;
    /** How many distinct rules denied (`topRules` lists at most the requested number). */
    rules: number;
  } | null;
  /** Connections closed by each resource limit since the start (docs/security.md "Bounded resources"). */
  cutOffs: {
    packet: number;
    connectTimeout: number;
    keepalive: number;
    slowConsumer: number;
  };
  /**
   * PUBLISH packets received from clients (`in`, refused ones included) and copies given to
   * subscribers (`out`), since the start; per second over the last sampling interval
   * (BROKER_SAMPLE_EVERY_MS; since the start until the first one ends).
   */
  messages: InOut;
  /** The payload bytes of those messages, the same way. */
  bytes: InOut;
  /** With `{"since": …}` only: what happened from the sample at or before `since` (or the oldest kept) until `now`. */
  span?: BrokerSpan;
}

/** The broker's counts over a span: differences of its totals, per second over the span. */
export interface BrokerSpan {
  from: number;
  until: number;
  messages: InOut;
  bytes: InOut;
  /** `null` when security is off. */
  denials: DenialKinds | null;
  cutOffs: BrokerStats['cutOffs'];
}

/**
 * The request: `{}`, `{"top": N}` (how many rules `denials.topRules` lists, 1–100, default 10),
 * and `{"since": <epoch ms>}` for a `span` too.
 */
export const brokerStatsQuerySchema = z
  .object({
    top: z.number().int().min(1).max(MAX_TOP_RULES).default(DEFAULT_TOP_RULES),
    since: z.number().int().min(0).optional(),
  })
  .strict();
