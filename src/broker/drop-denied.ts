/**
 * How a PUBLISH the policy refuses is dropped with its connection kept (docs/security.md "What a
 * denial looks like"). MQTT 3.1.1 lets a server refuse a PUBLISH by acknowledging it as usual or
 * by closing the connection [MQTT-3.3.5-2]; Relais acknowledges, so that a client that tried one
 * denied topic keeps its other work. Aedes's `authorizePublish` hook has two answers only (let it
 * through, or an error, which closes the connection: its docs, "Handler: authorizePublish"), and
 * `authorizeForward` runs per subscriber, after the message was retained, queued for offline
 * sessions and handed to the `published` hook. What the docs do allow is changing the packet in
 * `authorizePublish`; so the refused packet is let through emptied, on DROPPED_TOPIC, not
 * retained: Aedes acknowledges it (same packet id, same QoS) and publishes nothing anyone reads.
 *
 * Nobody reads DROPPED_TOPIC: a filter that begins with a wildcard never matches a topic that
 * begins with `$` [MQTT-4.7.2-1], Aedes queues `$SYS/` messages for no such filter either, and
 * no network client may subscribe to it by name (`$` topics are the broker's, and the policy's
 * built-in `invalid-topic` refuses the NUL level). test/integration/drop-denied.test.ts checks
 * each of these on Aedes itself, so an Aedes that changes them fails it.
 */

/** The topic a refused PUBLISH is turned into. Its U+0000 keeps it out of every filter a client may use (protocol §2.1). */
export const DROPPED_TOPIC = '$SYS/relais/\u0000dropped';

/** The fields of a PUBLISH `authorizePublish` may change. */
export interface PublishFields {
  topic: string;
  payload: Buffer | string;
  retain: boolean;
}

/** Empties `packet` in place, so that Aedes acknowledges it and delivers, keeps and queues nothing. */
export function emptyForDrop(packet: PublishFields): void {
  packet.topic = DROPPED_TOPIC;
  packet.payload = Buffer.alloc(0);
  packet.retain = false;
}
