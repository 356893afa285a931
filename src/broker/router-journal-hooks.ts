/**
 * How the router journal (router-journal.ts, protocol §11.1 "The journal") sits in Aedes's
 * pipeline: it keeps what Aedes published, holds the PUBACK of a QoS 1 command or response
 * until the router has stored it, takes the router's answers for itself, keeps the router's
 * subscription from delivering what the journal feeds, and follows the router's connection.
 */
import type { Aedes } from 'aedes';
import { HISTORY_FEED_TOPIC, HISTORY_STORED_TOPIC, recordedKind, storedPayloadSchema } from '../protocol/history-feed.js';
import { EVENTS_CATEGORY } from '../protocol/events.js';
import { notificationTopic } from '../protocol/topics.js';
import { JOURNAL_ID, RouterJournal, type JournalClient, type Packet, type Release, type RouterJournalOptions } from './router-journal.js';

interface Client {
  id: string;
  closed: boolean;
  clean: boolean;
}

type Hooks = {
  authorizePublish: (client: Client | null, packet: Packet, done: (error?: Error | null) => void) => void;
  authorizeForward: (client: Client, packet: Packet) => Packet | null | undefined;
  published: (packet: Packet, client: Client | null, done: (error?: Error | null) => void) => void;
  publish: (packet: Packet, client: Client | null, done?: (error?: Error) => void) => void;
};

/** Where the router pushes the event stream (protocol §11.8). */
const EVENTS_TOPIC = notificationTopic(EVENTS_CATEGORY);

/**
 * Installs the journal on `aedes`, around the hooks already there (install it after the
 * security's, so that a refused PUBLISH never reaches it).
 */
export function installRouterJournal(aedes: Aedes, options: RouterJournalOptions, log: (line: string) => void): RouterJournal {
  const journal = new RouterJournal(options, log);
  const broker = aedes as unknown as Hooks;
  const { routerId } = options;
  /** PUBACKs waiting for the journal to keep their message, by the message's payload (the same Buffer in Aedes's copy of the packet). */
  const waiting = new WeakMap<object, Release>();
  /** Incoming packets already published (or consumed): Aedes's own publish after the PUBACK is skipped. */
  const published = new WeakSet<object>();

  const previousPublished = broker.published;
  broker.published = (packet, client, done) => {
    if (packet.brokerId !== JOURNAL_ID) {
      const release = waiting.get(packet.payload as object);
      if (release) waiting.delete(packet.payload as object);
      const kind = recordedKind(packet.topic);
      if (kind) journal.keep(packet, kind, release);
      else release?.();
    }
    previousPublished.call(aedes, packet, client, done);
  };

  const onward = (broker.publish as Hooks['publish']).bind(aedes);
  broker.publish = (packet, client, done) => {
    if (published.has(packet)) {
      published.delete(packet);
      return void done?.();
    }
    onward(packet, client, done);
  };

  const previousAuthorizePublish = broker.authorizePublish;
  broker.authorizePublish = (client, packet, done) => {
    if (client?.id === routerId && packet.topic === HISTORY_STORED_TOPIC) {
      const through = storedThrough(packet.payload);
      if (through !== undefined) journal.confirm(through);
      published.add(packet); // for the journal only
      return done(null);
    }
    if (packet.topic === HISTORY_FEED_TOPIC) {
      // Only the journal feeds the router: a sync from anyone else could confirm what it has not stored.
      log(`dropped a message on ${HISTORY_FEED_TOPIC} from client ${JSON.stringify(client?.id ?? '(the broker)')}: only the broker's journal sends it`);
      published.add(packet);
      return done(null);
    }
    previousAuthorizePublish.call(aedes, client, packet, (error) => {
      const payload = packet.payload;
      // The router's own QoS 1 messages (the cancels of kill) are not held: its answer to the journal comes after them on its connection.
      if (error || packet.qos !== 1 || !journal.holding || client?.id === routerId || !Buffer.isBuffer(payload) || payload.length === 0 || !recordedKind(packet.topic)) return done(error);
      // The PUBACK (sent by Aedes when `done` is called) waits for the router to have stored the
      // message (protocol §1.3), so it is published first, a turn later as Aedes would have (the
      // same order against the other messages); Aedes's own publish after the PUBACK is skipped.
      let acknowledged = false;
      const release = () => {
        if (acknowledged) return;
        acknowledged = true;
        done(null);
      };
      waiting.set(payload, release);
      published.add(packet);
      setImmediate(() =>
        onward(packet, client, () => {
          // Not kept (a policy refused it, or it failed): acknowledged as Aedes would have.
          if (waiting.get(payload) !== release) return;
          waiting.delete(payload);
          release();
        }),
      );
    });
  };

  const previousAuthorizeForward = broker.authorizeForward;
  broker.authorizeForward = (client, packet) => {
    // The router gets commands, responses and cancels from the journal, not also from its
    // subscription. Except a QoS 1 one to a persistent session: Aedes has queued it for that
    // session, to send again after a reconnection (a refused copy is cleared from that queue,
    // refused-copies.ts); the router stores that copy once (§11.1: same digest).
    // Nor its own event pushes (protocol §11.8: the router makes no event of them): under a flood
    // they are as many bytes as the commands and responses, and the router would parse and
    // decode each batch only to drop it.
    if (client.id === routerId && packet.brokerId !== JOURNAL_ID && (packet.qos === 0 || client.clean) && (recordedKind(packet.topic) || packet.topic === EVENTS_TOPIC)) return null;
    return previousAuthorizeForward.call(aedes, client, packet);
  };

  aedes.on('connackSent', (connack: { returnCode?: number }, client: unknown) => {
    if ((client as Client).id === routerId && !connack.returnCode) journal.attach(client as JournalClient);
  });
  aedes.on('clientDisconnect', (client: unknown) => journal.detach(client as JournalClient));
  aedes.on('closed', () => journal.close());
  return journal;
}

function storedThrough(payload: Buffer | string): number | undefined {
  try {
    const envelope = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8')) as { payload?: unknown };
    const parsed = storedPayloadSchema.safeParse(envelope?.payload);
    return parsed.success ? parsed.data.through : undefined;
  } catch {
    return undefined;
  }
}
