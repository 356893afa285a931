/**
 * The broker's sampled totals (protocol §11.9): per second over the last interval sampled, and
 * the differences over a span, on a made-up clock.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CountSamples, sampleOf } from '../../src/broker/count-samples.js';

const START = 1_000_000;
const cut = { packet: 0, connectTimeout: 0, keepalive: 0, slowConsumer: 0 };
const at = (ms: number, messagesIn: number, bytesIn: number, publishDenials = 0) =>
  sampleOf(START + ms, { messagesIn, messagesOut: messagesIn * 2, bytesIn, bytesOut: bytesIn * 2 }, { connect: 0, subscribe: 0, publish: publishDenials, source: 0 }, { ...cut, packet: publishDenials });

describe('broker count samples', () => {
  it('broker count samples - before the first interval ends, per second since the start', () => {
    const samples = new CountSamples(START, 360, true);
    const { messages, bytes } = samples.figures(at(5_000, 50, 5_000));
    assert.deepEqual(messages, { in: 50, out: 100, inPerSecond: 10, outPerSecond: 20 });
    assert.deepEqual(bytes, { in: 5_000, out: 10_000, inPerSecond: 1_000, outPerSecond: 2_000 });
  });

  it('broker count samples - per second over the last interval sampled, totals since the start', () => {
    const samples = new CountSamples(START, 360, true);
    samples.add(at(10_000, 1_000, 100_000)); // a busy first interval
    samples.add(at(20_000, 1_020, 102_000)); // 20 messages in 10 s
    const { messages, bytes } = samples.figures(at(25_000, 1_500, 150_000));
    assert.deepEqual(messages, { in: 1_500, out: 3_000, inPerSecond: 2, outPerSecond: 4 });
    assert.deepEqual([bytes.in, bytes.inPerSecond, bytes.outPerSecond], [150_000, 200, 400]);
  });

  it('broker count samples - a span starts at the sample at or before since, and holds only what came after it', () => {
    const samples = new CountSamples(START, 360, true);
    samples.add(at(10_000, 100, 1_000, 1));
    samples.add(at(20_000, 300, 3_000, 4));
    const span = samples.since(START + 15_000, at(30_000, 500, 5_000, 6));
    assert.deepEqual([span.from, span.until], [START + 10_000, START + 30_000]);
    assert.deepEqual(span.messages, { in: 400, out: 800, inPerSecond: 20, outPerSecond: 40 });
    assert.deepEqual([span.bytes.in, span.bytes.inPerSecond], [4_000, 200]);
    assert.equal(span.denials!.publish, 5);
    assert.equal(span.cutOffs.packet, 5);
  });

  it('broker count samples - only the last samples are kept: a since older than them starts at the oldest kept', () => {
    const samples = new CountSamples(START, 2, false);
    for (let i = 1; i <= 5; i++) samples.add(sampleOf(START + i * 10_000, { messagesIn: i * 10, messagesOut: 0, bytesIn: 0, bytesOut: 0 }, null, cut));
    const span = samples.since(0, sampleOf(START + 60_000, { messagesIn: 60, messagesOut: 0, bytesIn: 0, bytesOut: 0 }, null, cut));
    assert.equal(span.from, START + 30_000);
    assert.equal(span.messages.in, 30);
    assert.equal(span.denials, null, 'security off: nothing is checked');
  });
});
