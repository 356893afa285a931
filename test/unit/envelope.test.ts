import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decode, encode, envelopeSchema, validate } from '../../src/protocol/envelope.js';
import { fromBase64, isBase64Value, toBase64 } from '../../src/protocol/binary.js';
import { InvalidMessageError, PayloadTooLargeError } from '../../src/protocol/errors.js';

const command = { type: 'command', source: 'vm-x', destination: '*', token: 't1', payload: { a: 1 } };

describe('envelope', () => {
  it('envelope - accepts the PSEC command from the design brief', () => {
    const result = decode(Buffer.from(JSON.stringify(command)));
    assert.ok(result.ok);
    assert.equal(result.envelope.token, 't1');
  });

  it('envelope - keeps unknown fields (forward compatibility)', () => {
    const result = validate({ ...command, future: { x: 1 } });
    assert.ok(result.ok);
    assert.deepEqual(result.envelope.future, { x: 1 });
  });

  it('envelope - names the faulty field', () => {
    const wrongType = validate({ ...command, type: 'commande' });
    assert.ok(!wrongType.ok);
    assert.match(wrongType.error.message, /field 'type'/);
    const badCode = validate({ ...command, type: 'response', code: 1.5 });
    assert.ok(!badCode.ok);
    assert.match(badCode.error.message, /field 'code'/);
    const noPayload = validate({ type: 'notification', source: 's', destination: '*' });
    assert.ok(!noPayload.ok);
    assert.equal(noPayload.error.message, "field 'payload' is required");
    assert.deepEqual(noPayload.sender, { source: 's' });
    const responseWithoutToken = validate({ type: 'response', source: 's', destination: 'r', payload: null });
    assert.ok(!responseWithoutToken.ok);
    assert.match(responseWithoutToken.error.message, /field 'token': a response must carry the token/);
    const badProgress = validate({ ...command, type: 'response', final: false, progress: 2 });
    assert.ok(!badProgress.ok);
    assert.match(badProgress.error.message, /field 'progress'/);
  });

  it('envelope - says what is wrong with non-JSON and non-objects', () => {
    const notJson = decode('{"type": ');
    assert.ok(!notJson.ok);
    assert.ok(notJson.error instanceof InvalidMessageError);
    assert.match(notJson.error.message, /not valid JSON/);
    const array = decode('[1,2]');
    assert.ok(!array.ok);
    assert.match(array.error.message, /must be a JSON object, got an array/);
  });

  it('envelope - refuses an oversized message before parsing it', () => {
    const result = decode(Buffer.alloc(2048, 32), 1024);
    assert.ok(!result.ok);
    assert.ok(result.error instanceof PayloadTooLargeError);
    assert.match(result.error.message, /2048 bytes is over the 1024-byte limit/);
  });

  it('envelope - encode stamps the protocol version and round-trips', () => {
    const text = encode({ type: 'notification', source: 'a', destination: '*', payload: [1] });
    assert.equal(JSON.parse(text).v, 1);
    const back = decode(text);
    assert.ok(back.ok);
    assert.deepEqual(back.envelope.payload, [1]);
  });

  it('envelope - random bytes never throw past the decoder', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        const result = decode(bytes);
        assert.equal(typeof result.ok, 'boolean');
      }),
      { numRuns: 2000 },
    );
  });

  it('envelope - random JSON never throws and valid-looking envelopes are accepted', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const result = decode(JSON.stringify(value) ?? 'null');
        if (!result.ok) assert.ok(result.error.message.length > 0);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.jsonValue(), fc.constantFrom('command', 'notification', 'log'), (payload, type) => {
        const result = validate({ type, source: 'a', destination: '*', payload });
        assert.ok(result.ok, !result.ok ? result.error.message : '');
      }),
    );
  });

  it('envelope - the fast path never accepts what the zod schema refuses', () => {
    const anyOf = <T>(arb: fc.Arbitrary<T>) => fc.oneof(arb, fc.jsonValue(), fc.constant(undefined));
    const candidate = fc.record({
      v: anyOf(fc.oneof(fc.integer({ min: -1, max: 3 }), fc.constant(2 ** 53))),
      type: anyOf(fc.constantFrom('command', 'response', 'notification', 'log', 'cancel')),
      source: anyOf(fc.string({ maxLength: 3 })),
      destination: anyOf(fc.string({ maxLength: 3 })),
      token: anyOf(fc.string({ maxLength: 3 })),
      payload: fc.jsonValue(),
      // Integers at the edge of safety too: 2^53 passes Number.isInteger but not zod's int().
      code: anyOf(fc.oneof(fc.integer({ min: -2, max: 200 }), fc.double(), fc.constantFrom(2 ** 53, Number.MAX_SAFE_INTEGER, -(2 ** 53)))),
      final: anyOf(fc.boolean()),
      progress: anyOf(fc.double({ min: -1, max: 2 })),
      priority: anyOf(fc.constantFrom('realtime', 'high', 'normal', 'low', 'urgent')),
      deadline: anyOf(fc.oneof(fc.integer(), fc.double(), fc.constantFrom(2 ** 53, Number.MAX_SAFE_INTEGER, 2 ** 53 + 2))),
      ts: anyOf(fc.double()),
      error: anyOf(fc.record({ name: anyOf(fc.string()), message: anyOf(fc.string()) })),
    }, { requiredKeys: ['payload'] });
    fc.assert(
      fc.property(candidate, (value) => {
        const object = JSON.parse(JSON.stringify(value));
        const ours = validate(object).ok;
        const zods = envelopeSchema.safeParse(object).success;
        assert.equal(ours, zods, JSON.stringify(object));
      }),
      { numRuns: 5000 },
    );
  });

  it('envelope - integers past 2^53 are refused by the fast path as by zod (found by the property above)', () => {
    const base = { type: 'command', source: 's', destination: '*', token: 't', payload: {} };
    for (const field of ['deadline', 'code', 'v'] as const) {
      const object = { ...base, [field]: 2 ** 53 };
      assert.equal(envelopeSchema.safeParse(object).success, false, field);
      assert.equal(validate(object).ok, false, `${field} = 2^53 must be refused`);
    }
    assert.equal(validate({ ...base, deadline: Number.MAX_SAFE_INTEGER }).ok, true);
  });

  it('binary - Base64 round-trips any bytes and refuses non-Base64', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const wire = toBase64(bytes);
        assert.ok(isBase64Value(JSON.parse(JSON.stringify(wire))));
        assert.deepEqual(fromBase64(wire), bytes);
      }),
    );
    assert.throws(() => fromBase64('not base64!'), /not valid Base64/);
    assert.throws(() => fromBase64({ nope: 1 } as never), /expected a Base64 string/);
  });

});
