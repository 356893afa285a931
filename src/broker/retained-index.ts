/**
 * The embedded broker's retained messages, indexed by topic level. Aedes's memory persistence
 * answers each SUBSCRIBE by testing every retained message against the new filters, so each
 * client that connects (it subscribes to its own presence and its request and response topics,
 * protocol §7.2, §4.2) costs the broker a pass over every retained presence on the bus: N² for N
 * clients (bench/RESULTS.md, idle clients). Here a filter without wildcards is one lookup, and a
 * filter with wildcards walks only the retained topics under its levels before the first one.
 * Matching is MQTT's (`topicMatches`, [MQTT-4.7]).
 */
import { Readable } from 'node:stream';
import { topicMatches } from '../protocol/topics.js';

/** What Aedes stores as a retained message: its topic and payload, and the rest of the packet. */
export interface RetainedPacket {
  topic: string;
  payload: { length: number };
}

interface Level<P> {
  packet?: P;
  children?: Map<string, Level<P>>;
}

export class RetainedIndex<P extends RetainedPacket = RetainedPacket> {
  private readonly root: Level<P> = {};
  private readonly byTopic = new Map<string, P>();

  get size(): number {
    return this.byTopic.size;
  }

  /** Keeps `packet` as its topic's retained message; an empty payload clears the topic (MQTT 3.1.1 §3.3.1.3). */
  store(packet: P): void {
    const levels = packet.topic.split('/');
    if (packet.payload.length === 0) return this.clear(packet.topic, levels);
    let level = this.root;
    for (const name of levels) {
      level.children ??= new Map();
      let child = level.children.get(name);
      if (!child) level.children.set(name, (child = {}));
      level = child;
    }
    level.packet = packet;
    this.byTopic.set(packet.topic, packet);
  }

  /** The retained messages whose topic `filter` matches. */
  *match(filter: string): Generator<P> {
    if (!filter.includes('+') && !filter.includes('#')) {
      const packet = this.byTopic.get(filter);
      if (packet) yield packet;
      return;
    }
    // The levels before the first wildcard name one subtree; only its topics can match.
    let level: Level<P> | undefined = this.root;
    for (const name of filter.split('/')) {
      if (name === '+' || name === '#') break;
      level = level.children?.get(name);
      if (!level) return;
    }
    for (const packet of subtree(level)) if (topicMatches(filter, packet.topic)) yield packet;
  }

  private clear(topic: string, levels: string[]): void {
    if (!this.byTopic.delete(topic)) return;
    const path: Array<[Level<P>, string]> = [];
    let level = this.root;
    for (const name of levels) {
      path.push([level, name]);
      level = level.children!.get(name)!;
    }
    delete level.packet;
    // Levels left with neither a message nor children go, from the leaf up.
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, name] = path[i]!;
      const child = parent.children!.get(name)!;
      if (child.packet !== undefined || (child.children?.size ?? 0) > 0) break;
      parent.children!.delete(name);
    }
  }
}

function* subtree<P>(level: Level<P>): Generator<P> {
  if (level.packet !== undefined) yield level.packet;
  if (level.children) for (const child of level.children.values()) yield* subtree(child);
}

/** The part of Aedes's persistence that keeps retained messages, as Aedes calls it. */
interface RetainedPersistence {
  storeRetained(packet: RetainedPacket, callback?: (error: Error | null) => void): Promise<void> | void;
  createRetainedStream(filter: string): Readable;
  createRetainedStreamCombi(filters: string[]): Readable;
}

/**
 * Makes `persistence` (Aedes's, before any client connects) keep its retained messages in a
 * RetainedIndex. A copy of each packet is kept, as the memory persistence does.
 */
export function indexRetained(persistence: RetainedPersistence): RetainedIndex {
  const index = new RetainedIndex();
  persistence.storeRetained = (packet, callback) => {
    index.store({ ...packet });
    if (!callback) return Promise.resolve();
    process.nextTick(callback, null);
  };
  persistence.createRetainedStream = (filter) => Readable.from(index.match(filter));
  // One pass per filter, as the memory persistence makes it: a topic two filters match comes twice.
  persistence.createRetainedStreamCombi = (filters) =>
    Readable.from(
      (function* () {
        for (const filter of filters) yield* index.match(filter);
      })(),
    );
  return index;
}
