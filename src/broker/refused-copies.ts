/**
 * Aedes queues a QoS 1 message for a persistent session (clean: false) once per matching
 * subscription, then delivers one copy: the others are refused (its duplicate check, or an
 * `authorizeForward` that says no), and for each refused copy it clears "the queued message with
 * this packet id". A copy that was never sent has no packet id, so that clears the first queued
 * message still without one: often another message on its way, whose delivery then finds
 * nothing to update ('no such packet') and drops the connection. A client with overlapping
 * subscriptions and a persistent session (the router: `#` and `relais/presence/+`) lost its
 * connection that way right after it started, and again whenever two such messages crossed.
 * Here a refused copy without a packet id clears a queued copy of the same message (same broker
 * and counter), one not being sent yet: what is left is exactly the copy that is delivered.
 */

/** A packet as Aedes's memory persistence keeps it in a session's outgoing queue. */
interface QueuedPacket {
  brokerId?: string;
  brokerCounter?: number;
  messageId?: number;
}

export interface OutgoingPersistence {
  outgoingClearMessageId(client: { id: string }, packet: QueuedPacket): Promise<QueuedPacket | undefined>;
  /** Gives the first queued copy of this message (same broker and counter) this packet id; throws when there is none. */
  outgoingUpdate(client: { id: string }, packet: QueuedPacket): Promise<void>;
}

/** Packet ids no MQTT packet has (1–65535), one per clearing, so that two never meet. */
let marker = 0;

/**
 * Makes `persistence` clear a refused copy by its identity, not by a packet id it does not have.
 * The refusal comes before the delivered copy is given its packet id (Aedes gives it on the next
 * turn), so the first queued copy of the message is the one to clear: marked, then cleared, with
 * the persistence's own calls.
 */
export function clearRefusedCopiesByIdentity(persistence: OutgoingPersistence): void {
  const clearById = persistence.outgoingClearMessageId.bind(persistence);
  const update = persistence.outgoingUpdate.bind(persistence);
  persistence.outgoingClearMessageId = async (client, packet) => {
    if (packet.messageId !== undefined || packet.brokerId === undefined) return clearById(client, packet);
    marker = marker <= -Number.MAX_SAFE_INTEGER ? -1 : marker - 1;
    const mark = { brokerId: packet.brokerId, brokerCounter: packet.brokerCounter, messageId: marker };
    try {
      await update(client, mark);
    } catch {
      return undefined; // no queued copy of it: nothing to clear
    }
    return clearById(client, mark);
  };
}
