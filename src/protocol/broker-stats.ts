/**
 * The embedded broker's statistics on the wire (protocol §11.9): the action that answers them
 * and what the answer holds. Pure: no I/O.
 */
import { z } from 'zod';

export const BROKER_STATS_ACTION = 'relais/broker/stats/get';

/** Rules listed in `denials.topRules` unless the request asks for another count (`{"top": N}`, 1–100). */
export const DEFAULT_TOP_RULES = 10;
export const MAX_TOP_RULES = 100;

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
}

/** The request: `{}` or `{"top": N}` (how many rules `denials.topRules` lists, 1–100, default 10). */
export const brokerStatsQuerySchema = z
  .object({ top: z.number().int().min(1).max(MAX_TOP_RULES).default(DEFAULT_TOP_RULES) })
  .strict();
