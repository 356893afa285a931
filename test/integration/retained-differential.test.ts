/**
 * The embedded broker's retained messages (src/broker/retained-index.ts, which retained presences
 * go through, protocol §7) against Mosquitto's, the reference MQTT 3.1.1 broker. A seeded plan
 * stores, replaces and clears retained messages on many topics (empty levels, a leading `/`,
 * `$`-prefixed, unicode, long levels), then clients subscribe with many filters, overlapping in
 * one SUBSCRIBE and across SUBSCRIBEs, unsubscribing and subscribing again; each SUBSCRIBE must
 * bring the same retained (topic, payload) on both brokers, as many times each.
 *
 * A failure names its seed: `RETAINED_SEED=<seed>` replays that plan alone.
 * `RETAINED_SEEDS=<n>` runs n plans (3 by default).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { startEmbeddedBroker } from '../../src/broker/index.js';
import { peerGate, startMosquitto, uniqueId, within } from '../testkit/index.js';

const gate = peerGate('mosquitto', 'the retained messages differential against Mosquitto');
/** Generous: the machine may be saturated; a wait only catches a hang. */
const WAIT_MS = 15_000;

/** Level names topics are made of: empty, case, a space, multi-byte and astral characters, a long one. */
const LONG_LEVEL = 'l'.repeat(300);
const LEVELS = ['a', 'b', 'c', 'A', '', 'x y', 'é', '日本', '🚀', LONG_LEVEL];
/**
 * First levels starting with `$`: `#` and `+` at the first level do not match them [MQTT-4.7.2-1].
 * None starts with `$SYS`: Aedes refuses a client's PUBLISH under `$SYS/` (it closes the
 * connection) and Mosquitto drops one on any topic starting with `$SYS`, `$SYSTEM/a` too.
 */
const DOLLAR_ROOTS = ['$', '$a', '$SY', '$sys', '$ys'];
/**
 * Kept in the first phase: Mosquitto (2.0.11) does not send a retained `$a` to `$a/#` unless
 * `$a` has a retained topic under it (it does for `a` and `a/#`); with these, the one-level `$`
 * topics are compared as well.
 */
const DOLLAR_ANCHORS = DOLLAR_ROOTS.map((root) => `${root}/kept`);
const BASE_TOPICS = ['a', 'a/b', 'a/b/c', 'a//b', '/', '/a', 'a/', '//', 'b/a', '$a/b', '$', '$SY/a'];
const BASE_FILTERS = ['#', '+', 'a/#', 'a/+/c', '+/+', '/#', '+/#', '$SYS/#', '$a/#', '$/#', '+/+/+', 'a/+', '/+', '+/', 'a/b/#', '$SY/#', '+/a/#', '$a/+', '+/kept'];
/** Its retained message comes last for each SUBSCRIBE (it is the last filter): the replay is over. No generated filter matches it. */
const SENTINEL = '$sentinel/end';

type QoS = 0 | 1;
interface Publish {
  topic: string;
  /** Empty: clears the topic's retained message. */
  payload: string;
  qos: QoS;
}
type Step = { kind: 'subscribe'; filters: string[]; qos: QoS } | { kind: 'unsubscribe'; filters: string[] };
/** What is published, then what each subscriber does (each in its own connection, all at once). */
interface Phase {
  publishes: Publish[];
  sessions: Step[][];
}

/** mulberry32: small, seedable, good enough to pick test cases. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function planFor(seed: number): Phase[] {
  const next = random(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const chance = (p: number) => next() < p;
  const qos = (): QoS => (chance(0.5) ? 1 : 0);

  const randomTopic = () => {
    const depth = 1 + Math.floor(next() * 5);
    const levels = Array.from({ length: depth }, () => pick(LEVELS));
    if (chance(0.15)) levels[0] = pick(DOLLAR_ROOTS);
    // A topic has at least one character [MQTT-4.7.3-1]: a lone empty level is a protocol error.
    return levels.join('/') || '/';
  };
  const topics = [...new Set([...BASE_TOPICS, ...Array.from({ length: 30 + Math.floor(next() * 30) }, randomTopic)])];

  // Each topic stored once, in a shuffled order; then replaced, cleared, stored again after a clear.
  const order = [...topics].sort(() => next() - 0.5);
  let version = 0;
  const payload = () => `v${++version}${chance(0.2) ? ' ü🚀' : ''}`;
  const publishes: Publish[] = [...DOLLAR_ANCHORS, ...order].map((topic) => ({ topic, payload: payload(), qos: qos() }));
  for (let i = 0; i < topics.length; i++) {
    const roll = next();
    if (roll < 0.4) publishes.push({ topic: pick(topics), payload: payload(), qos: qos() });
    else if (roll < 0.8) publishes.push({ topic: pick(topics), payload: '', qos: qos() });
    else publishes.push({ topic: randomTopic(), payload: '', qos: qos() }); // maybe never stored
  }

  const randomFilter = (): string => {
    const roll = next();
    if (roll < 0.3) return pick(BASE_FILTERS);
    if (roll < 0.5) return pick(topics); // exact, stored, replaced or cleared
    let levels = pick(topics).split('/').map((level) => (chance(0.3) ? '+' : level));
    if (chance(0.4)) levels = [...levels.slice(0, Math.floor(next() * (levels.length + 1))), '#'];
    return levels.join('/');
  };
  const filters = (count: number) => [...new Set(Array.from({ length: count }, randomFilter))];
  const sessions: Step[][] = Array.from({ length: 6 + Math.floor(next() * 5) }, () => {
    const steps: Step[] = [];
    const subscribed: string[] = [];
    for (let n = 1 + Math.floor(next() * 3); n > 0; n--) {
      const chosen = filters(1 + Math.floor(next() * 4));
      steps.push({ kind: 'subscribe', filters: chosen, qos: qos() });
      subscribed.push(...chosen);
      if (chance(0.3)) {
        // Gone and made again: the retained messages come again [MQTT-3.8.4-3].
        const again = [pick(subscribed)];
        steps.push({ kind: 'unsubscribe', filters: again }, { kind: 'subscribe', filters: again, qos: qos() });
      }
    }
    return steps;
  });

  // Then everything cleared: nothing of it may come back, to any filter.
  const clearAll: Publish[] = [...DOLLAR_ANCHORS, ...topics].map((topic) => ({ topic, payload: '', qos: qos() }));
  // Each filter once: Aedes answers a SUBSCRIBE naming one filter twice with one return code fewer than [MQTT-3.8.4-5] asks.
  const everywhere = [...new Set(['#', '+/#', '/#', ...DOLLAR_ROOTS.map((root) => `${root}/#`), ...topics.filter(() => chance(0.2))])];
  return [
    { publishes, sessions },
    { publishes: clearAll, sessions: [[{ kind: 'subscribe', filters: everywhere, qos: 1 }]] },
  ];
}

const shown = (text: string) => JSON.stringify(text).replaceAll(LONG_LEVEL, `l×${LONG_LEVEL.length}`);

async function connected(url: string, role: string): Promise<MqttClient> {
  return within(mqtt.connectAsync(url, { clientId: uniqueId(role), protocolVersion: 4, reconnectPeriod: 0, connectTimeout: WAIT_MS }), WAIT_MS, `${role} connecting to ${url}`);
}

/** What each SUBSCRIBE of each session brought, as sorted `topic = payload` lines (one per copy), keyed by where it happened. */
async function runPlan(plan: Phase[], url: string): Promise<Map<string, string[]>> {
  const results = new Map<string, string[]>();
  const publisher = await connected(url, 'retainer');
  try {
    await publisher.publishAsync(SENTINEL, 'end', { qos: 1, retain: true });
    for (const [phaseIndex, phase] of plan.entries()) {
      // One at a time: MQTT.js writes a QoS 0 PUBLISH at once but a QoS 1 one after storing it, so
      // fired together they could go out of order. One connection: the last acknowledgement means
      // the broker handled every earlier PUBLISH.
      for (const { topic, payload, qos } of phase.publishes) await within(publisher.publishAsync(topic, payload, { qos, retain: true }), WAIT_MS, `publishing on ${shown(topic)}`);
      await within(publisher.publishAsync(SENTINEL, 'end', { qos: 1, retain: true }), WAIT_MS, 'the last publish');
      await Promise.all(
        phase.sessions.map(async (steps, sessionIndex) => {
          const subscriber = await connected(url, 'subscriber');
          try {
            let replayed: string[] = [];
            let replayOver: () => void = () => {};
            subscriber.on('message', (topic, payload, packet) => {
              if (!packet.retain) return;
              if (topic === SENTINEL) replayOver();
              // The brokers' own statistics: neither lets a client publish there.
              // Not the QoS: Aedes takes a retained message's down to the subscription's only when
              // the client has a subscription on the very topic (client.js deliverQoS), so a QoS 0
              // wildcard subscription gets QoS 1 ones; that is Aedes's, with or without the index.
              else if (!topic.startsWith('$SYS/')) replayed.push(`${shown(topic)} = ${shown(payload.toString())}`);
            });
            for (const [stepIndex, step] of steps.entries()) {
              const where = `phase ${phaseIndex + 1}, subscriber ${sessionIndex + 1}, step ${stepIndex + 1}: ${step.kind.toUpperCase()} ${step.filters.map(shown).join(' ')}${step.kind === 'subscribe' ? ` (qos ${step.qos})` : ''}`;
              if (step.kind === 'unsubscribe') {
                await within(subscriber.unsubscribeAsync(step.filters), WAIT_MS, where);
                continue;
              }
              replayed = [];
              const over = new Promise<void>((resolve) => (replayOver = resolve));
              const granted = await within(subscriber.subscribeAsync([...step.filters, SENTINEL], { qos: step.qos }), WAIT_MS, where);
              assert.ok(granted.every((grant) => grant.qos !== 128), `${where}: refused ${JSON.stringify(granted)}`);
              await within(over, WAIT_MS, `${where}: the sentinel's retained message`);
              results.set(where, replayed.sort());
            }
          } finally {
            subscriber.end(true);
          }
        }),
      );
    }
  } finally {
    // At once: a connection the broker closed would never finish a polite end.
    publisher.end(true);
  }
  return results;
}

/** The first SUBSCRIBE whose replay differs, told as what each broker sent. */
function firstDifference(embedded: Map<string, string[]>, reference: Map<string, string[]>): string | undefined {
  for (const [where, sent] of reference) {
    const ours = embedded.get(where) ?? [];
    if (JSON.stringify(ours) === JSON.stringify(sent)) continue;
    const onlyOurs = ours.filter((line) => !sent.includes(line));
    const onlyReference = sent.filter((line) => !ours.includes(line));
    return [
      where,
      `  the embedded broker sent ${ours.length}, Mosquitto ${sent.length}`,
      `  only the embedded broker: ${onlyOurs.length ? onlyOurs.join(', ') : '(none: a copy more or less of a topic both sent)'}`,
      `  only Mosquitto: ${onlyReference.length ? onlyReference.join(', ') : '(none)'}`,
      `  embedded: ${ours.join(', ') || '(nothing)'}`,
      `  Mosquitto: ${sent.join(', ') || '(nothing)'}`,
    ].join('\n');
  }
  return undefined;
}

function seeds(): number[] {
  if (process.env.RETAINED_SEED) return [Number(process.env.RETAINED_SEED)];
  const first = Math.floor(Math.random() * 2 ** 31);
  return Array.from({ length: Number(process.env.RETAINED_SEEDS ?? 3) }, (_, i) => first + i);
}

describe('retained messages against Mosquitto', { skip: gate.skip }, () => {
  for (const seed of seeds()) {
    it(`retained differential - every SUBSCRIBE brings what Mosquitto's brings (seed ${seed})`, async () => {
      const plan = planFor(seed);
      await using embedded = await startEmbeddedBroker({ port: 0, log: () => {} });
      await using reference = await startMosquitto();
      const [ours, theirs] = await Promise.all([runPlan(plan, embedded.url!), runPlan(plan, reference.url)]);
      assert.equal(ours.size, theirs.size);
      const difference = firstDifference(ours, theirs);
      assert.equal(difference, undefined, `seed ${seed} (replay: RETAINED_SEED=${seed} node --import tsx --test test/integration/retained-differential.test.ts)\n${difference}`);
    });
  }
});

/** A client's PUBLISHes as `topic=payload r<retain flag>` lines, the topic without `<root>/` (or `<root>-`); `until(n)` waits for the n-th. */
function received(client: MqttClient, root: string) {
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  client.on('message', (topic, payload, packet) => {
    lines.push(`${topic.slice(root.length + 1)}=${payload.toString()} r${packet.retain ? 1 : 0}`);
    for (const wake of waiters.splice(0)) wake();
  });
  const until = (count: number, what: string) =>
    within(
      new Promise<void>(function check(resolve) {
        if (lines.length >= count) resolve();
        else waiters.push(() => check(resolve));
      }),
      WAIT_MS,
      what,
    );
  return { lines, until };
}

const brokers = [
  { name: 'the embedded broker', start: async () => { const broker = await startEmbeddedBroker({ port: 0, log: () => {} }); return { url: broker.url!, close: () => broker.close() }; }, skip: false as const },
  { name: 'Mosquitto (the reference)', start: async () => { const broker = await startMosquitto(); return { url: broker.url, close: () => broker.close() }; }, skip: gate.skip },
];

for (const { name, start, skip } of brokers) {
  describe(`retained messages on ${name}`, { skip }, () => {
    it('retained - a filter unsubscribed and made again brings the retained messages as they are then, with retain=1, and nothing sent meanwhile', async () => {
      const broker = await start();
      const publisher = await connected(broker.url, 'retainer');
      const subscriber = await connected(broker.url, 'subscriber');
      try {
        const root = uniqueId('kept');
        // Its retained message comes last for each SUBSCRIBE naming it last: the replay is over.
        const end = `${root}-end`;
        for (const [topic, text] of [['one', '1'], ['two', '2'], ['gone', 'g']] as const) await publisher.publishAsync(`${root}/${topic}`, text, { qos: 1, retain: true });
        await publisher.publishAsync(end, 'end', { qos: 1, retain: true });
        const got = received(subscriber, root);
        await subscriber.subscribeAsync([`${root}/#`, end], { qos: 1 });
        await got.until(4, 'the first replay');
        assert.deepEqual(got.lines.splice(0).sort(), ['end=end r1', 'gone=g r1', 'one=1 r1', 'two=2 r1']);

        await subscriber.unsubscribeAsync([`${root}/#`, end]);
        await publisher.publishAsync(`${root}/one`, '1b', { qos: 1, retain: true });
        await publisher.publishAsync(`${root}/gone`, '', { qos: 1, retain: true });
        await publisher.publishAsync(`${root}/three`, '3', { qos: 1, retain: true });
        await subscriber.subscribeAsync([`${root}/#`, end], { qos: 1 });
        await got.until(4, 'the replay after subscribing again');
        assert.deepEqual(got.lines.sort(), ['end=end r1', 'one=1b r1', 'three=3 r1', 'two=2 r1']);
      } finally {
        subscriber.end(true);
        publisher.end(true);
        await broker.close();
      }
    });

    it('retained - a message retained while a subscriber is connected reaches it with retain=0 [MQTT-3.3.1-9], a SUBSCRIBE after gets it with retain=1, and once cleared nobody gets it again', async () => {
      const broker = await start();
      const publisher = await connected(broker.url, 'retainer');
      const present = await connected(broker.url, 'present');
      const clients = [publisher, present];
      try {
        const root = uniqueId('live');
        const end = `${root}-end`;
        await publisher.publishAsync(end, 'end', { qos: 1, retain: true });
        const live = received(present, root);
        await present.subscribeAsync(`${root}/+`, { qos: 1 });

        await publisher.publishAsync(`${root}/presence`, 'alive', { qos: 1, retain: true });
        await live.until(1, 'the live copy');
        assert.deepEqual(live.lines.splice(0), ['presence=alive r0']);

        // The same filter again: its retained messages are sent again [MQTT-3.8.4-3], as retained.
        await present.subscribeAsync(`${root}/+`, { qos: 1 });
        await live.until(1, 'the replay to the present subscriber');
        assert.deepEqual(live.lines.splice(0), ['presence=alive r1']);

        const later = await connected(broker.url, 'later');
        clients.push(later);
        const replayed = received(later, root);
        await later.subscribeAsync([`${root}/+`, end], { qos: 1 });
        await replayed.until(2, 'the replay to a later subscriber');
        assert.deepEqual(replayed.lines.splice(0), ['presence=alive r1', 'end=end r1']);

        // A clear is a PUBLISH like any other for those subscribed (MQTT 3.1.1 §3.3.1.3), then nothing is retained.
        await publisher.publishAsync(`${root}/presence`, '', { qos: 1, retain: true });
        await live.until(1, 'the live clear');
        await replayed.until(1, 'the live clear to the later subscriber');
        assert.deepEqual(live.lines.splice(0), ['presence= r0']);
        assert.deepEqual(replayed.lines.splice(0), ['presence= r0']);
        const last = await connected(broker.url, 'last');
        clients.push(last);
        const none = received(last, root);
        await last.subscribeAsync([`${root}/+`, `${root}/#`, end], { qos: 1 });
        await none.until(1, 'the last replay');
        assert.deepEqual(none.lines, ['end=end r1']);
      } finally {
        for (const client of clients) client.end(true);
        await broker.close();
      }
    });
  });
}
