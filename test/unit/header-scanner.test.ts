/**
 * The fixed-header scanner the embedded broker reads every network connection through
 * (src/broker/limits.ts): it follows packet boundaries from the headers alone, however the
 * bytes are split, and refuses a packet by its declared length.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import mqttPacket from 'mqtt-packet';
import { HeaderScanner, MAX_REMAINING_LENGTH } from '../../src/broker/limits.js';

const connect = mqttPacket.generate({ cmd: 'connect', clientId: 'c1', keepalive: 30, protocolVersion: 4, clean: true });
const publish = (bytes: number) => mqttPacket.generate({ cmd: 'publish', topic: 't', payload: Buffer.alloc(bytes), qos: 0, retain: false, dup: false });
/** A PUBLISH fixed header (QoS 0) claiming `length` bytes, with no body. */
const publishHeader = (length: number) => {
  const bytes = [0x30];
  do {
    let digit = length % 128;
    length = Math.floor(length / 128);
    if (length > 0) digit |= 0x80;
    bytes.push(digit);
  } while (length > 0);
  return Buffer.from(bytes);
};

function scanInPieces(scanner: HeaderScanner, stream: Buffer, cuts: number[]) {
  let verdict = scanner.scan(Buffer.alloc(0));
  let start = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < stream.length)].sort((a, b) => a - b).concat(stream.length)) {
    verdict = scanner.scan(stream.subarray(start, cut));
    start = cut;
  }
  return verdict;
}

describe('broker header scanner', () => {
  it('accepts a stream of packets under the limit, however it is split', () => {
    const stream = Buffer.concat([connect, publish(0), publish(127), publish(128), publish(16_384), publish(70_000), mqttPacket.generate({ cmd: 'pingreq' })]);
    fc.assert(fc.property(fc.array(fc.nat({ max: stream.length }), { maxLength: 40 }), (cuts) => {
      assert.deepEqual(scanInPieces(new HeaderScanner(100_000), stream, cuts), { ok: true });
    }));
  });

  it('refuses a packet that claims more than the limit, from its header alone, however it is split', () => {
    const stream = Buffer.concat([connect, publish(500), publishHeader(MAX_REMAINING_LENGTH)]);
    fc.assert(fc.property(fc.array(fc.nat({ max: stream.length }), { maxLength: 10 }), (cuts) => {
      assert.deepEqual({ ...scanInPieces(new HeaderScanner(1000), stream, cuts), at: 0 }, { ok: false, reason: 'too-large', type: 3, claimed: MAX_REMAINING_LENGTH, at: 0, limit: 1000, beforeAuthentication: false });
    }));
    // In one chunk, `at` is where the refused packet's header starts: what comes before it is whole.
    assert.deepEqual(new HeaderScanner(1000).scan(stream), { ok: false, reason: 'too-large', type: 3, claimed: MAX_REMAINING_LENGTH, at: stream.length - 5, limit: 1000, beforeAuthentication: false });
  });

  it('counts the limit on the remaining length: exactly the limit passes, one more does not', () => {
    const overhead = publish(0).length - 2; // topic length + topic
    assert.equal(new HeaderScanner(overhead + 200).scan(Buffer.concat([connect, publish(200)])).ok, true);
    assert.equal(new HeaderScanner(overhead + 199).scan(Buffer.concat([connect, publish(200)])).ok, false);
  });

  it('before authentication, bounds every packet by the smaller limit: a large CONNECT is refused at its header, however it is split', () => {
    const big = mqttPacket.generate({ cmd: 'connect', clientId: 'c1', keepalive: 30, protocolVersion: 4, clean: true, username: 'x'.repeat(60_000), password: Buffer.alloc(1000) });
    fc.assert(fc.property(fc.array(fc.nat({ max: 8 }), { maxLength: 4 }), (cuts) => {
      const verdict = scanInPieces(new HeaderScanner(100_000, 16_384), big, cuts);
      assert.deepEqual({ ...verdict, at: 0 }, { ok: false, reason: 'too-large', type: 1, claimed: big.length - 4, at: 0, limit: 16_384, beforeAuthentication: true });
    }));
    // A PUBLISH sent before the CONNACK is bounded the same way; after authenticate(), the packet limit applies.
    const early = new HeaderScanner(100_000, 16_384);
    assert.equal(early.scan(Buffer.concat([connect, publish(20_000)])).ok, false);
    const later = new HeaderScanner(100_000, 16_384);
    assert.equal(later.scan(connect).ok, true);
    later.authenticate();
    assert.equal(later.scan(publish(20_000)).ok, true);
  });

  it('refuses a first packet that is not CONNECT', () => {
    assert.deepEqual(new HeaderScanner(1000).scan(publish(1)), { ok: false, reason: 'not-connect', type: 3 });
    assert.deepEqual(new HeaderScanner(1000).scan(mqttPacket.generate({ cmd: 'pingreq' })), { ok: false, reason: 'not-connect', type: 12 });
  });

  it('refuses a remaining length of more than 4 bytes', () => {
    assert.deepEqual(new HeaderScanner(1000).scan(Buffer.concat([connect, Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])])), { ok: false, reason: 'malformed' });
  });

  it('stays refused once refused', () => {
    const scanner = new HeaderScanner(10);
    scanner.scan(publish(1));
    assert.equal(scanner.scan(connect).ok, false);
  });
});
