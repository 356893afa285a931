import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseXpl, writeXpl, XPL_LIMITS, type XplMessage } from '../../src/bridge/xpl/message.js';
import { Discovery } from '../../src/bridge/xpl/discovery.js';
import { categoryOfSchema } from '../../src/bridge/xpl/xpl-bridge.js';
import { fixture, fixtureNames } from './xpl-fixtures.js';


function parsed(bytes: Uint8Array | string): XplMessage {
  const result = parseXpl(typeof bytes === 'string' ? Buffer.from(bytes) : bytes);
  assert.ok(result.ok, result.ok ? '' : result.problem);
  return result.message;
}

describe('xPL messages (pure)', () => {
  it('parse - every message of the corpus reads, and writes back byte for byte', () => {
    const files = fixtureNames();
    assert.ok(files.length >= 10);
    for (const name of files) {
      const bytes = fixture(name);
      assert.equal(writeXpl(parsed(bytes)), bytes.toString('utf8'), name);
    }
  });

  it('parse - header, schema and body as the specification example (x10.basic)', () => {
    assert.deepEqual(parsed(fixture('x10-basic-cmnd.txt')), {
      type: 'xpl-cmnd',
      hop: 1,
      source: 'xpl-xplhal.myhouse',
      target: 'acme-cm12.server',
      schema: 'x10.basic',
      body: [['command', 'dim'], ['device', 'a1'], ['level', '75']],
    });
  });

  it('parse - keeps body order and repeated keys; a value may hold = and be empty', () => {
    assert.deepEqual(parsed(fixture('osd-basic-repeated-keys.txt')).body, [['command', 'write'], ['text', 'first line'], ['text', 'second line'], ['delay', '10']]);
    assert.deepEqual(parsed(fixture('log-basic-reserved-class.txt')).body, [['type', 'inf'], ['text', 'disk=87% full, a=b'], ['code', '']]);
  });

  it('parse - refuses what breaks the specification, saying what', () => {
    const good = fixture('x10-basic-cmnd.txt').toString();
    const cases: Array<[string, string, RegExp]> = [
      ['message type', good.replace('xpl-cmnd', 'xpl-foo'), /not xpl-cmnd, xpl-stat or xpl-trig/],
      ['hop 0', good.replace('hop=1', 'hop=0'), /hop '0'/],
      ['hop 10', good.replace('hop=1', 'hop=10'), /hop '10'/],
      ['vendor of 9', good.replace('source=xpl-', 'source=abcdefghi-'), /source/],
      ['instance of 17', good.replace('.myhouse', '.abcdefghijklmnopq'), /source/],
      ['target', good.replace('target=acme-cm12.server', 'target=nobody'), /target 'nobody'/],
      ['no target', good.replace('target=acme-cm12.server\n', ''), /'target' missing/],
      ['extra header field', good.replace('hop=1\n', 'hop=1\nfoo=2\n'), /unknown field 'foo'/],
      ['class of 9', good.replace('x10.basic', 'abcdefghi.basic'), /schema/],
      ['type of 9', good.replace('x10.basic', 'x10.abcdefghi'), /schema/],
      ['key of 17', good.replace('level=75', `${'k'.repeat(XPL_LIMITS.key + 1)}=75`), /body key/],
      ['value of 129', good.replace('level=75', `level=${'v'.repeat(XPL_LIMITS.value + 1)}`), /129 characters/],
      ['no =', good.replace('level=75', 'level'), /not key=value/],
      ['truncated', good.slice(0, good.indexOf('device=')), /truncated/],
      ['trailing text', `${good}xpl-cmnd\n`, /after the end/],
      ['over 1500 bytes', good.replace('level=75', Array.from({ length: 14 }, (_, i) => `k${i}=${'v'.repeat(120)}`).join('\n')), /over the 1500-byte limit/],
    ];
    for (const [what, text, problem] of cases) {
      const result = parseXpl(Buffer.from(text));
      assert.equal(result.ok, false, what);
      assert.match((result as { problem: string }).problem, problem, what);
    }
    const invalidUtf8 = Buffer.concat([Buffer.from(good.replace('level=75\n', '')).subarray(0, -2), Buffer.from('x=\xff\n}\n', 'latin1')]);
    assert.deepEqual(parseXpl(invalidUtf8), { ok: false, problem: 'not valid UTF-8' });
  });

  it('write - what it writes parses back to the same message (property)', () => {
    const name = (max: number) => fc.stringMatching(new RegExp(`^[a-z0-9]{1,${max}}$`));
    const message = fc.record({
      type: fc.constantFrom('xpl-cmnd', 'xpl-stat', 'xpl-trig' as const),
      hop: fc.integer({ min: 1, max: 9 }),
      source: fc.tuple(name(8), name(8), fc.stringMatching(/^[a-z0-9-]{1,16}$/)).map(([v, d, i]) => `${v}-${d}.${i}`),
      target: fc.constant('*'),
      schema: fc.tuple(fc.stringMatching(/^[a-z0-9-]{1,8}$/), fc.stringMatching(/^[a-z0-9-]{1,8}$/)).map(([c, t]) => `${c}.${t}`),
      body: fc.array(fc.tuple(fc.stringMatching(/^[a-z0-9-]{1,16}$/), fc.stringMatching(/^[ -~]{0,40}$/)), { maxLength: 8 }),
    });
    fc.assert(fc.property(message, (original) => assert.deepEqual(parsed(writeXpl(original as XplMessage)), { ...original })), { numRuns: 300, seed: 20261201 });
  });

  it('write - refuses a message the specification does not allow', () => {
    const base: XplMessage = { type: 'xpl-cmnd', hop: 1, source: 'relais-bridge.test', target: '*', schema: 'x10.basic', body: [['device', 'a1']] };
    assert.throws(() => writeXpl({ ...base, body: [['device', 'a\nb']] }), /control character/);
    assert.throws(() => writeXpl({ ...base, schema: 'x10' }), /schema/);
    assert.throws(() => writeXpl({ ...base, body: [['device=x', 'a']] }), /body key/);
  });

  it('topics - class and type become levels; a reserved topic word gets a leading _', () => {
    assert.equal(categoryOfSchema('x10.basic'), 'xpl/x10/basic');
    assert.equal(categoryOfSchema('hbeat.request'), 'xpl/hbeat/_request');
    assert.equal(categoryOfSchema('log.basic'), 'xpl/_log/basic');
  });

  it('discovery - each application and addressed device once; bounded memory', () => {
    const discovery = new Discovery(4);
    const devices = discovery.observe(parsed(fixture('x10-basic-trig.txt')));
    assert.deepEqual(
      devices.map(({ technology, address, type, reference }) => ({ technology, address, type, reference })),
      [
        { technology: 'xpl', address: 'acme-cm12.server', type: 'application', reference: 'acme-cm12' },
        { technology: 'x10', address: 'b3', type: 'basic', reference: 'acme-cm12' },
        { technology: 'x10', address: 'b4', type: 'basic', reference: 'acme-cm12' },
      ],
    );
    assert.deepEqual(discovery.observe(parsed(fixture('x10-basic-trig.txt'))), []);
    const sensor = discovery.observe(parsed(fixture('sensor-basic-temp.txt')));
    assert.deepEqual(sensor.map((device) => [device.technology, device.address, device.type]), [['xpl', 'tonyt-1wire.house', 'application'], ['sensor', '28.3fa2b5000000', 'temp']]);
    assert.equal(discovery.size, 4);
    assert.deepEqual(discovery.observe(parsed(fixture('hbeat-app.txt'))).map((device) => device.address), ['acme-lamp.livingroom']);
    assert.equal(discovery.size, 4);
  });
});
