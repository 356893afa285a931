/**
 * How a PUBLISH the policy refuses is dropped with its connection kept (docs/security.md "What a
 * denial looks like"). MQTT 3.1.1 lets a server refuse a PUBLISH by acknowledging it as usual or
 * by closing the connection [MQTT-3.3.5-2]; Relais acknowledges, so that a client that tried one
 * denied topic keeps its other work. Aedes's `authorizePublish` hook has two answers only (let it
 * through, or an error, which closes the connection: its docs, "Handler: authorizePublish"), and
 * `authorizeForward` runs per subscriber, after the message was retained, queued for offline
 * sessions and handed to the `published` hook. What its docs do allow is changing the packet in
 * `authorizePublish`; so the refused packet is let through emptied, on DROPPED_TOPIC, not
 * retained: Aedes acknowledges it (same packet id, same QoS) and nobody reads it:
 *
 * - a filter that begins with a wildcard never matches a topic that begins with `$`
 *   [MQTT-4.7.2-1], and Aedes queues a `$SYS/` message for no such filter of an offline session;
 * - a network client's filter that names `$SYS` and would match it is refused (`readsDropped`).
 *
 * test/integration/drop-denied.test.ts checks each of these on Aedes itself, so that an Aedes
 * that changes one fails it.
 */

/** The topic a refused PUBLISH is turned into. */
export const DROPPED_TOPIC = '$SYS/relais/dropped';
const DROPPED_LEVELS = DROPPED_TOPIC.split('/');

/** The fields of a PUBLISH `authorizePublish` may change. */
export interface PublishFields {
  topic: string;
  payload: Buffer | string;
  retain: boolean;
}

/** Empties `packet` in place, so that Aedes acknowledges it and delivers, keeps and queues nothing anyone reads. */
export function emptyForDrop(packet: PublishFields): void {
  packet.topic = DROPPED_TOPIC;
  packet.payload = Buffer.alloc(0);
  packet.retain = false;
}

/** Whether a subscription to `filter` would receive what is dropped (its first level must name `$SYS`: [MQTT-4.7.2-1]). */
export function readsDropped(filter: string): boolean {
  if (!filter.startsWith('$SYS/')) return false;
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    if (levels[i] === '#') return true;
    if (i >= DROPPED_LEVELS.length || (levels[i] !== '+' && levels[i] !== DROPPED_LEVELS[i])) return false;
  }
  return levels.length === DROPPED_LEVELS.length;
}
