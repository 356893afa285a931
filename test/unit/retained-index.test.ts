/**
 * The embedded broker's index of retained messages: what a filter gets is exactly what MQTT's
 * matching over every retained message would give (the oracle: `topicMatches` on each), a cleared
 * topic is gone, and a broker answers retained presences through it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import mqtt from 'mqtt';
import { startEmbeddedBroker } from '../../src/broker/index.js';
import { RetainedIndex, type RetainedPacket } from '../../src/broker/retained-index.js';
import { topicMatches } from '../../src/protocol/topics.js';
import { uniqueId, within } from '../testkit/index.js';

const TOPICS = ['a', 'a/b', 'a/b/c', 'a//b', '/a', 'a/', '/', 'a/b/c/d', 'b', 'b/a', '$SYS/x', '$SYS/x/y', 'relais/presence/alice', 'relais/presence/bob', 'relais/presence/alice~tab', 'relais/sites/p1', 'relais/sites/p1/clients', 'x/y/z'];
const FILTERS = ['#', '+', 'a', 'a/#', 'a/+', 'a/+/c', '+/b', '+/+', '/+', '+/', 'a/b/#', '+/+/+', '$SYS/#', '+/x', 'relais/presence/+', 'relais/presence/alice', 'relais/sites/+', 'relais/sites/+/clients', 'nothing/#', 'a/b/c/d/#', 'a//b', '+/#'];

const packet = (topic: string, text = topic): RetainedPacket & { text: string } => ({ topic, payload: Buffer.from(text), text });

describe('retained index', () => {
  it('retained index - every filter gets exactly the topics MQTT matching gives, stored and cleared in any order', () => {
    const index = new RetainedIndex<RetainedPacket & { text: string }>();
    const held = new Map<string, string>();
    // Stored, overwritten, some cleared (empty payload), some stored again: in a fixed shuffled order.
    const steps: Array<[string, string]> = [...TOPICS.map((topic) => [topic, `v1 ${topic}`] as [string, string]), ['a/b', ''], ['a', 'v2 a'], ['/', ''], ['relais/presence/bob', ''], ['a/b', 'v3 a/b'], ['x/y/z', ''], ['never/stored', '']];
    for (const [topic, text] of steps) {
      index.store(packet(topic, text));
      if (text === '') held.delete(topic);
      else held.set(topic, text);
      for (const filter of FILTERS) {
        const got = [...index.match(filter)].map((p) => `${p.topic}=${p.text}`).sort();
        const expected = [...held].filter(([heldTopic]) => topicMatches(filter, heldTopic)).map(([heldTopic, heldText]) => `${heldTopic}=${heldText}`).sort();
        assert.deepEqual(got, expected, `${filter} after storing ${JSON.stringify(text)} on ${topic}`);
      }
    }
    assert.equal(index.size, held.size);
  });

  it('retained index - a cleared topic leaves no level behind: clearing everything empties the index', () => {
    const index = new RetainedIndex();
    for (const topic of TOPICS) index.store(packet(topic));
    for (const topic of TOPICS) index.store({ topic, payload: Buffer.alloc(0) });
    assert.equal(index.size, 0);
    assert.deepEqual([...index.match('#')], []);
    assert.deepEqual((index as unknown as { root: { children?: Map<string, unknown> } }).root.children?.size ?? 0, 0);
  });

  it('retained index - the embedded broker sends a new subscriber the retained messages its filters match, and none cleared', async () => {
    const broker = await startEmbeddedBroker({ port: 0, log: () => {} });
    const publisher = await mqtt.connectAsync(broker.url!, { clientId: uniqueId('retainer'), protocolVersion: 4 });
    const reader = await mqtt.connectAsync(broker.url!, { clientId: uniqueId('reader'), protocolVersion: 4 });
    try {
      const root = uniqueId('kept');
      for (const topic of ['one', 'two', 'two/deep', 'gone']) await publisher.publishAsync(`${root}/${topic}`, topic, { qos: 1, retain: true });
      await publisher.publishAsync(`${root}/gone`, '', { qos: 1, retain: true });
      const received: string[] = [];
      const all = new Promise<void>((resolve) =>
        reader.on('message', (topic, body, packet) => {
          if (packet.retain) received.push(`${topic.slice(root.length + 1)}=${body.toString()}`);
          if (received.length === 3) resolve();
        }),
      );
      await reader.subscribeAsync([`${root}/+`, `${root}/two/deep`], { qos: 1 });
      await within(all, 5000, 'the retained messages');
      assert.deepEqual(received.sort(), ['one=one', 'two/deep=two/deep', 'two=two']);
    } finally {
      await publisher.endAsync();
      await reader.endAsync();
      await broker.close();
    }
  });
});
