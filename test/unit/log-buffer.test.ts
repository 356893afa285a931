/** The log buffer alone (protocol §11.4): its two bounds, its filters, its masks, and the logger that feeds it. */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import pino from 'pino';
import { captureLogs, LogBuffer } from '../../src/client/serving/log-buffer.js';

const line = (msg: string, level = 30) => JSON.stringify({ level, msg });
const texts = (buffer: LogBuffer, filter = {}, max = 1000) => buffer.select(filter, max, 1 << 20).lines.map((kept) => (JSON.parse(kept.text) as { msg: string }).msg);

describe('log buffer', () => {
  it('log buffer - memory stays within maxBytes however many lines are written, the newest kept', () => {
    const buffer = new LogBuffer(1_000_000, 10_000);
    for (let i = 0; i < 100_000; i++) buffer.add(30, `${line(`line ${i}`)}\n`);
    assert.ok(buffer.bytes <= 10_000, `${buffer.bytes} bytes`);
    const kept = texts(buffer);
    assert.equal(kept.at(-1), 'line 99999');
    assert.equal(kept.length, buffer.lines);
  });

  it('log buffer - after, since and level select lines; max keeps the newest', () => {
    const buffer = new LogBuffer(100, 100_000);
    buffer.add(30, line('a'));
    buffer.add(50, line('b', 50));
    buffer.add(20, line('c', 20));
    assert.deepEqual(texts(buffer, { after: 1 }), ['b', 'c']);
    assert.deepEqual(texts(buffer, { level: 30 }), ['a', 'b']);
    assert.deepEqual(texts(buffer, {}, 2), ['b', 'c']);
    assert.deepEqual(texts(buffer, { since: Date.now() + 60_000 }), []);
    assert.equal(buffer.newest, 3);
  });

  it('log buffer - the byte budget of an answer leaves out the oldest and says so', () => {
    const buffer = new LogBuffer(100, 100_000);
    for (let i = 0; i < 10; i++) buffer.add(30, line(`line ${i}`));
    const { lines, truncated } = buffer.select({}, 100, 60);
    assert.equal(truncated, true);
    assert.ok(lines.length > 0 && lines.length < 10);
    assert.match(lines.at(-1)!.text, /line 9/);
  });

  it('log buffer - masks replace a secret wherever it appears in a line', () => {
    const buffer = new LogBuffer(10, 10_000, [[':hunter22@', ':***@']]);
    buffer.add(40, line('cannot reach mqtt://bob:hunter22@host:1883'));
    assert.deepEqual(texts(buffer), ['cannot reach mqtt://bob:***@host:1883']);
  });

  it('log buffer - captureLogs keeps lines from its level while the destination keeps the logger level', () => {
    const written: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        written.push(chunk.toString());
        done();
      },
    });
    const base = pino({ level: 'warn' }, destination);
    const buffer = new LogBuffer(10, 10_000);
    const logger = captureLogs(base, buffer, 'debug');
    logger.trace('trace: neither');
    logger.debug('debug: buffer only');
    logger.error('error: both');
    base.error('through the original: destination only');
    assert.deepEqual(texts(buffer), ['debug: buffer only', 'error: both']);
    assert.deepEqual(written.map((text) => (JSON.parse(text) as { msg: string }).msg), ['error: both', 'through the original: destination only']);
    assert.equal(base.level, 'warn', 'the given logger is left as it was');
  });
});
