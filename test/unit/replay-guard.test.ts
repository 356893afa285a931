import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Packet } from 'mqtt';
import { MAX_STRIKES, ReplayGuardStore } from '../../src/client/connection/replay-guard.js';

const publish = (messageId: number, topic: string) => ({ cmd: 'publish', messageId, topic, qos: 1, payload: 'x' }) as unknown as Packet;
const put = (store: ReplayGuardStore, packet: Packet) => store.put(packet, () => {});

describe('replay guard', () => {
  it('replay guard - the oldest unacknowledged packet is given up after MAX_STRIKES drops; acknowledged ones are never blamed', () => {
    const store = new ReplayGuardStore();
    put(store, publish(1, 'ok/one'));
    put(store, publish(2, 'refused/two'));
    put(store, publish(3, 'ok/three'));
    store.del({ messageId: 1 }, () => {}); // acknowledged
    assert.equal(MAX_STRIKES, 2);
    assert.equal(store.strikeOldest(), undefined, 'one drop is not enough');
    assert.deepEqual(store.strikeOldest(), { messageId: 2, topic: 'refused/two' });
    store.del({ messageId: 2 }, () => {});
    assert.equal(store.strikeOldest(), undefined, 'the next packet starts with no strike');
    assert.equal(store.size, 1);
  });

  it('replay guard - replays what is left, oldest first, as MQTT.js reads it', async () => {
    const store = new ReplayGuardStore();
    put(store, publish(7, 'a'));
    put(store, publish(3, 'b'));
    const replayed: number[] = [];
    for await (const packet of store.createStream() as AsyncIterable<{ messageId: number }>) replayed.push(packet.messageId);
    assert.deepEqual(replayed, [7, 3]);
  });

  it('replay guard - a message id used again starts with no strike', () => {
    const store = new ReplayGuardStore();
    put(store, publish(1, 'x'));
    store.strikeOldest();
    store.del({ messageId: 1 }, () => {});
    put(store, publish(1, 'y'));
    assert.equal(store.strikeOldest(), undefined);
  });

  it('replay guard - a packet stored again under its message id is replayed once, after the others', async () => {
    const store = new ReplayGuardStore();
    put(store, publish(1, 'first'));
    put(store, publish(2, 'second'));
    put(store, publish(1, 'first again')); // MQTT.js stores a packet again when it sends it again
    const replayed: string[] = [];
    for await (const packet of store.createStream() as AsyncIterable<{ topic: string }>) replayed.push(packet.topic);
    assert.deepEqual(replayed, ['second', 'first again']);
    assert.equal(store.size, 2);
  });

  it('replay guard - storing new packets builds no Error (each QoS 1 publish stores one)', () => {
    const store = new ReplayGuardStore();
    const RealError = globalThis.Error;
    let built = 0;
    globalThis.Error = class CountedError extends RealError {
      constructor(...args: ConstructorParameters<ErrorConstructor>) {
        super(...args);
        built++;
      }
    } as ErrorConstructor;
    try {
      for (let id = 1; id <= 100; id++) put(store, publish(id, 'bench/f1/notification'));
    } finally {
      globalThis.Error = RealError;
    }
    assert.equal(built, 0);
    assert.equal(store.size, 100);
  });
});
