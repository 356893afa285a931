import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decode, encode, encodeJson } from '../../src/protocol/envelope.js';
import { PayloadTooLargeError } from '../../src/protocol/errors.js';
import { cancelMessage, commandMessage, notificationMessage, presenceMessage, responseMessage, restampAcceptBy } from '../../src/protocol/messages.js';

describe('messages', () => {
  it('messages - every builder makes a valid envelope, source and token before the payload (protocol §3.1)', () => {
    const at = { source: 'vm-x', destination: 'h', token: 't1', priority: 'normal' as const };
    const built = [
      commandMessage({ ...at, payload: { big: 'x' }, deadline: 10, acceptBy: 5 }),
      responseMessage(at, { step: 'accepted', progress: 0.5 }),
      responseMessage(at, { step: 'progress', payload: { p: 1 } }),
      responseMessage(at, { step: 'result', payload: 42 }),
      responseMessage(at, { step: 'error', code: 6, error: { name: 'TimeoutError', message: 'late' }, notRun: true }),
      cancelMessage({ ...at, reason: 'stop' }),
      notificationMessage({ source: 'vm-x', payload: {}, priority: 'high' }),
      presenceMessage('vm-x', { status: 'alive', actions: [], since: 1 }),
    ];
    for (const envelope of built) {
      const text = encode(envelope);
      const result = decode(text);
      assert.ok(result.ok, text);
      assert.equal(result.envelope.v, 1);
      const keys = Object.keys(JSON.parse(text));
      assert.ok(keys.indexOf('source') < keys.indexOf('payload'), text);
      if (keys.includes('token')) assert.ok(keys.indexOf('token') < keys.indexOf('payload'), text);
    }
    assert.deepEqual(JSON.parse(encode(built[1]!)), { ...JSON.parse(encode(built[1]!)), final: false, accepted: true, progress: 0.5 });
    assert.equal(JSON.parse(encode(built[4]!)).accepted, false);
  });

  it('messages - a command gets a new acceptBy without being encoded again', () => {
    const text = encode(commandMessage({ source: 'a', destination: 'b', token: 't', payload: { acceptBy: 'in the payload' }, priority: 'normal', deadline: 99, acceptBy: 1 }));
    const renewed = restampAcceptBy(text, 1_795_000_000_123);
    const envelope = JSON.parse(renewed);
    assert.equal(envelope.acceptBy, 1_795_000_000_123);
    assert.deepEqual(envelope.payload, { acceptBy: 'in the payload' });
    assert.equal(JSON.parse(restampAcceptBy(renewed, 0)).acceptBy, 0);
    assert.throws(() => restampAcceptBy(encode(commandMessage({ source: 'a', destination: 'b', token: 't', payload: {}, priority: 'normal', deadline: 9 })), 5), /no acceptBy/);
  });

  it('messages - encoding checks JSON and size once, naming the message', () => {
    assert.throws(() => encodeJson({ n: 1n }, { what: 'the request to demo/x' }), (error: unknown) => error instanceof TypeError && /the request to demo\/x is not JSON/.test(error.message));
    assert.throws(() => encodeJson('é'.repeat(600), { maxBytes: 1000, what: 'the message' }), (error: unknown) => error instanceof PayloadTooLargeError && /the message is 1200 bytes, over the 1000-byte limit/.test(error.message));
    assert.equal(encodeJson('é'.repeat(300), { maxBytes: 1000 }).length, 300);
  });
});
