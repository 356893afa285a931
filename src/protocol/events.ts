/**
 * The router's one event stream on the wire (protocol §11.8): what an event holds, the
 * topic it is pushed on and the action that replays it. Pure: no I/O.
 */
import { z } from 'zod';

export const EVENTS_CATEGORY = 'relais/events';
export const EVENTS_ACTION = 'relais/events/get';

export const EVENT_TYPES = ['client', 'request.started', 'request.finished', 'notification', 'log', 'history.gap', 'site.up', 'site.down', 'site.sync', 'kv.put', 'kv.delete'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** One event: `cursor` increases by one from each event to the next, with no gap. */
export interface BusEvent {
  cursor: number;
  /** When the router stored it (epoch ms). */
  time: number;
  type: EventType;
  /** What happened; its fields depend on `type` (protocol §11.8). */
  data: Record<string, unknown>;
}

/** What the router pushes on `relais/events/notification`: the events of one batch, in order. */
export interface EventBatch {
  events: BusEvent[];
}

export const eventsQuerySchema = z
  .object({
    /** Events after this cursor; absent: the newest `limit`. */
    since: z.number().int().nonnegative().optional(),
    limit: z.number().int().min(1).max(5000).default(1000),
  })
  .strict();
export type EventsQuery = z.input<typeof eventsQuerySchema>;

export interface EventsPage {
  events: BusEvent[];
  /** More events follow the last one returned. */
  more: boolean;
  /** The newest cursor stored (0 when none). */
  latest: number;
  /** Events after `since` that retention removed before they could be read: the consumer is told how many it missed. */
  missed?: number;
}
