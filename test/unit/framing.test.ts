/**
 * The binary framing (protocol §3.5): header JSON, one LF, body; how a reader tells it from a
 * JSON envelope; what a signature covers (§12.2); the acceptBy renewal of a binary command (§4.7).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { decode, encode, encodeMessage, encodeWire } from '../../src/protocol/envelope.js';
import { splitFrame } from '../../src/protocol/framing.js';
import { commandMessage, notificationMessage, restampAcceptBy } from '../../src/protocol/messages.js';
import { Signer, Verifier } from '../../src/client/connection/signing.js';
import { PayloadTooLargeError } from '../../src/protocol/errors.js';

const bytes = (text: string) => new Uint8Array(Buffer.from(text, 'latin1'));
const note = (payload: unknown) => notificationMessage({ source: 'alice', payload, priority: 'normal' });

describe('binary framing', () => {
  it('framing - a bytes payload is written header, LF, body, with body = its length where payload was', () => {
    const wire = encodeMessage(commandMessage({ source: 'a', destination: 'b', token: 't', payload: bytes('\n\u0000\u00ff'), priority: 'normal', deadline: 9, acceptBy: 5 }));
    assert.ok(wire instanceof Uint8Array);
    const text = Buffer.from(wire).toString('latin1');
    const header = JSON.parse(text.slice(0, text.indexOf('\n'))) as Record<string, unknown>;
    assert.equal(header.body, 3);
    assert.equal('payload' in header, false);
    assert.deepEqual(Object.keys(header), ['v', 'type', 'source', 'destination', 'token', 'body', 'priority', 'deadline', 'ts', 'acceptBy'], 'body where payload was, acceptBy still last');
    assert.equal(text.slice(text.indexOf('\n') + 1), '\n\u0000\u00ff');
  });

  it('framing - decode gives back the same bytes as payload, the header members as they were, no body member', () => {
    const body = new Uint8Array(1000).map((_, i) => i % 256);
    const decoded = decode(Buffer.from(encodeMessage(note(body))));
    assert.ok(decoded.ok, decoded.ok ? '' : decoded.error.message);
    assert.deepEqual(new Uint8Array(decoded.envelope.payload as Uint8Array), body);
    assert.equal(decoded.envelope.body, undefined);
    assert.equal(decoded.envelope.source, 'alice');
  });

  it('framing - JSON envelopes are unchanged: pretty-printed, with a trailing LF, or with an extra body member', () => {
    const pretty = Buffer.from(JSON.stringify({ v: 1, type: 'notification', source: 'a', destination: '*', payload: { x: 1 } }, null, 2));
    assert.deepEqual((decode(pretty) as { envelope: { payload: unknown } }).envelope.payload, { x: 1 });
    const trailing = Buffer.from(`${encode(note({ y: 2 }))}\n`);
    assert.deepEqual((decode(trailing) as { envelope: { payload: unknown } }).envelope.payload, { y: 2 });
    const withBody = Buffer.from(`${encode({ ...note('text'), body: 3 })}\n`);
    const decoded = decode(withBody);
    assert.ok(decoded.ok);
    assert.equal(decoded.envelope.payload, 'text');
    assert.equal(typeof encodeMessage(note({ z: 3 })), 'string', 'a JSON payload is still JSON text');
  });

  it('framing - hostile: a body length that disagrees, a negative or fractional one, and a missing LF are invalid, with the sender for an answer', () => {
    const header = (body: unknown) => JSON.stringify({ v: 1, type: 'command', source: 'alice', destination: 'b', token: 't9', body });
    for (const [wire, pattern] of [
      [`${header(5)}\nabc`, /'body' is 5 bytes, 3 follow the LF/],
      [`${header(2 ** 60)}\nabc`, /non-negative integer/],
      [`${header(-1)}\n`, /non-negative integer/],
      [`${header(1.5)}\nx`, /non-negative integer/],
      [`${header('3')}\nabc`, /non-negative integer/],
      [header(3), /one LF/],
    ] as const) {
      const decoded = decode(Buffer.from(wire));
      assert.equal(decoded.ok, false, wire);
      if (decoded.ok) continue;
      assert.match(decoded.error.message, pattern);
      assert.deepEqual(decoded.sender, { source: 'alice', token: 't9' });
      assert.equal(decoded.error.responseCode, 2);
    }
    // A header that is not UTF-8, or whose JSON is broken, is no binary message: the whole is not JSON either.
    assert.equal(decode(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(`${header(1)}\nx`)])).ok, false);
    assert.equal(decode(Buffer.from('{"body":1,\nx')).ok, false);
  });

  it('size limit - header + LF + body counts (protocol §3.4)', () => {
    const wire = encodeMessage(note(new Uint8Array(100)));
    const size = (wire as Uint8Array).length;
    assert.throws(() => encodeMessage(note(new Uint8Array(100)), { maxBytes: size - 1 }), PayloadTooLargeError);
    assert.equal((encodeMessage(note(new Uint8Array(100)), { maxBytes: size }) as Uint8Array).length, size);
    assert.equal(decode(Buffer.from(wire), size - 1).ok, false);
    assert.throws(() => encodeWire(new Uint8Array(11), { maxBytes: 10 }), PayloadTooLargeError);
    assert.throws(() => encode(note(new Uint8Array(1))), /binary message/, 'the text-only encoder refuses bytes rather than writing them as JSON');
  });

  it('acceptBy - a binary command gets a new acceptBy in its header, its body untouched', () => {
    const wire = encodeMessage(commandMessage({ source: 'a', destination: 'b', token: 't', payload: bytes('xyz'), priority: 'normal', deadline: 9, acceptBy: 1 }));
    const renewed = restampAcceptBy(wire, 1_795_000_000_123);
    const decoded = decode(Buffer.from(renewed));
    assert.ok(decoded.ok);
    assert.equal(decoded.envelope.acceptBy, 1_795_000_000_123);
    assert.equal(Buffer.from(decoded.envelope.payload as Uint8Array).toString(), 'xyz');
  });

  it('signing - the sig member goes last in the header and covers the body: a changed body byte is a forgery', () => {
    const alice = generateKeyPairSync('ed25519');
    const signer = new Signer({ privateKey: alice.privateKey });
    const verifier = new Verifier({ keys: [{ identity: 'alice', publicKey: alice.publicKey }] }, new Signer({ privateKey: generateKeyPairSync('ed25519').privateKey }), 'h1');
    const topic = 'demo/files/notification';
    const signed = Buffer.from(signer.sign(topic, encodeMessage(note(bytes('payload bytes')))));
    const framed = splitFrame(signed)!;
    assert.ok(framed.headerText.endsWith('}}') && framed.headerText.includes(',"sig":{"kid":"'), 'the header ends with the sig member');
    assert.equal(Buffer.from(framed.body).toString(), 'payload bytes');
    const check = (payload: Buffer) => verifier.check(topic, payload, () => decode(payload), true);
    assert.deepEqual(check(signed), { ok: true });
    const tampered = Buffer.from(signed);
    tampered[tampered.length - 1] = tampered[tampered.length - 1]! ^ 1;
    assert.equal((check(tampered) as { reason: string }).reason, 'forged');
    // Raw bytes (no header) are written unsigned, as a raw string is.
    const raw = bytes('raw');
    assert.equal(signer.sign(topic, raw), raw);
  });
});
