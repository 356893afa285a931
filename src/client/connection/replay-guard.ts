/**
 * MQTT.js's outgoing store, made safe against a packet the broker refuses (protocol §1.4).
 *
 * MQTT.js keeps every unacknowledged QoS 1 PUBLISH and sends it again before anything else
 * after a reconnection. A broker that refuses a packet by dropping the connection (a topic
 * it does not accept, a size or an ACL it enforces that way) would then drop every
 * reconnection too, for ever. The broker handles packets in order, so the oldest packet
 * still unacknowledged when the connection drops is the likely culprit: it gets a strike.
 * At `MAX_STRIKES` it is taken out of the store (its sender is told), so the client comes
 * back; one unrelated drop costs an innocent packet nothing.
 *
 * It extends MQTT.js's own store, whose `createStream` makes the stream MQTT.js reads the
 * replay from, in Node and in its browser build alike.
 */
import mqtt, { type Packet } from 'mqtt';

export const MAX_STRIKES = 2;

type Callback = (error?: Error, packet?: Packet) => void;

const NOTHING = () => {};

export class ReplayGuardStore extends mqtt.Store {
  /** Unacknowledged packets by message id, oldest first (the store MQTT.js keeps is read only through its stream). */
  private readonly inflight = new Map<number, Packet>();
  private readonly strikes = new Map<number, number>();

  constructor() {
    // Not `clean`: closing must not empty the store under a publish still settling.
    super({ clean: false });
  }

  /** A packet stored again (a message id used again) goes to the end: it is the newest. */
  override put(packet: Packet, cb: (error?: Error) => void): this {
    const id = (packet as { messageId?: number }).messageId!;
    // Only a packet already stored is taken out of MQTT.js's store first: for a new one (every
    // QoS 1 publish) its `del` builds a 'missing packet' Error, stack and all, a quarter of a
    // notifying client's CPU (bench/RESULTS.md). `inflight` holds what that store holds.
    if (this.inflight.delete(id)) super.del({ messageId: id }, NOTHING);
    this.strikes.delete(id);
    this.inflight.set(id, packet);
    return super.put(packet, cb);
  }

  override del(packet: Pick<Packet, 'messageId'>, cb: Callback): this {
    this.inflight.delete(packet.messageId!);
    this.strikes.delete(packet.messageId!);
    return super.del(packet, cb);
  }

  get size(): number {
    return this.inflight.size;
  }

  /**
   * The connection dropped: strikes the oldest unacknowledged packet. Returns it when it has
   * now reached `MAX_STRIKES` and must be removed (the caller removes it through MQTT.js, so
   * its callback is told).
   */
  strikeOldest(): { messageId: number; topic: string } | undefined {
    const oldest = this.inflight.entries().next();
    if (oldest.done) return undefined;
    const [messageId, packet] = oldest.value;
    const strikes = (this.strikes.get(messageId) ?? 0) + 1;
    this.strikes.set(messageId, strikes);
    if (strikes < MAX_STRIKES) return undefined;
    return { messageId, topic: String((packet as { topic?: unknown }).topic ?? '?') };
  }
}
