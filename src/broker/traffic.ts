/**
 * The embedded broker's message traffic (protocol §11.9 `messages`, `bytes`): what `nats-top`
 * and Mosquitto's `$SYS/broker/publish/…` report. Counted in Aedes's two per-message hooks, a
 * few additions each, nothing allocated: the PUBLISH packets clients send (in) and the copies
 * the broker hands to subscribers (out), and their payload bytes.
 */
import type { Aedes } from 'aedes';

/** Totals since the broker started. */
export interface TrafficCounts {
  /** PUBLISH packets received from clients (in-process ones included), refused ones too (they are also denials). */
  messagesIn: number;
  /** Copies of messages given to subscribers (one per subscriber and message, retained and queued ones included). */
  messagesOut: number;
  /** Payload bytes of those messages (topics and MQTT headers aside). */
  bytesIn: number;
  bytesOut: number;
}

export function noTraffic(): TrafficCounts {
  return { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 };
}

interface Packet {
  payload: Buffer | string;
}

type Hooks = {
  authorizePublish: (client: unknown, packet: Packet, done: (error?: Error | null) => void) => void;
  authorizeForward: (client: unknown, packet: Packet) => Packet | null | undefined;
};

function payloadBytes(payload: Buffer | string): number {
  return typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
}

/**
 * Counts `aedes`'s traffic into `counts`. Install it after every other hook on
 * `authorizePublish` and `authorizeForward`: outermost, it sees each PUBLISH as the client sent
 * it (before a denial empties it) and only the copies every hook let through.
 */
export function countTraffic(aedes: Aedes, counts: TrafficCounts): void {
  const broker = aedes as unknown as Hooks;
  const authorizePublish = broker.authorizePublish;
  broker.authorizePublish = (client, packet, done) => {
    counts.messagesIn++;
    counts.bytesIn += payloadBytes(packet.payload);
    authorizePublish.call(aedes, client, packet, done);
  };
  const authorizeForward = broker.authorizeForward;
  broker.authorizeForward = (client, packet) => {
    const forwarded = authorizeForward.call(aedes, client, packet);
    if (forwarded) {
      counts.messagesOut++;
      counts.bytesOut += payloadBytes(forwarded.payload);
    }
    return forwarded;
  };
}
