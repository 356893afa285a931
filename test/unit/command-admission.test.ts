/**
 * The checks a handler makes of a message on its request topics (protocol §4.2), pure: each
 * verdict, and the order of the protocol's table where two checks would disagree.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { admitCommand, type Serving, type ServingView } from '../../src/protocol/command-admission.js';
import { decode } from '../../src/protocol/envelope.js';

const NOW = 1_000_000;

function view(serving: Serving = 'yes', known: string[] = []): ServingView {
  return { self: 'svc', serving: () => serving, knows: (key) => known.includes(key) };
}

const admit = (fields: Record<string, unknown>, { targeted = false, serving = 'yes' as Serving, known = [] as string[] } = {}) =>
  admitCommand('demo/a', targeted, decode(JSON.stringify({ v: 1, type: 'command', source: 'req', destination: '*', token: 't1', payload: {}, ...fields })), 1, NOW, view(serving, known), () => 'made-up');

describe('command admission (protocol §4.2)', () => {
  it('admission - a valid command for an action served runs; it wants an acknowledgement only with acceptBy', () => {
    const plain = admit({});
    assert.equal(plain.kind, 'run');
    assert.equal(plain.kind === 'run' && plain.wantsAcks, false);
    const acked = admit({ acceptBy: NOW + 10 });
    assert.equal(acked.kind === 'run' && acked.wantsAcks, true);
    assert.deepEqual(acked.kind === 'run' && acked.to, { action: 'demo/a', requester: 'req', token: 't1', priority: 'normal', qos: 1 });
  });

  it('admission - no token: the answers carry one made up', () => {
    const verdict = admit({ token: undefined });
    assert.equal(verdict.kind === 'run' && verdict.to.token, 'made-up');
  });

  it('admission - dropped without answer: not a command, another destination (untargeted), a bad source, a built-in action untargeted', () => {
    for (const [fields, options] of [[{ type: 'notification' }, {}], [{ destination: 'other' }, {}], [{ source: 'a+b' }, {}], [{}, { serving: 'targeted-only' as Serving }]] as const) {
      const verdict = admit(fields, options);
      assert.equal(verdict.kind, 'drop', JSON.stringify(fields));
      assert.equal(verdict.kind === 'drop' && verdict.answer, undefined, JSON.stringify(fields));
    }
    assert.equal(admit({ destination: 'other' }, { targeted: true }).kind, 'run', 'a targeted topic ignores destination');
  });

  it('admission - answered and not run: not served (code 3), starting (code 3), past its deadline (code 6), past its acceptBy (code 6, not run)', () => {
    const code = (verdict: ReturnType<typeof admit>) => (verdict.kind === 'drop' ? [verdict.answer?.code, verdict.answer?.notRun ?? false] : verdict.kind);
    assert.deepEqual(code(admit({}, { serving: 'no', targeted: true })), [3, false]);
    assert.deepEqual(code(admit({}, { serving: 'starting' })), [3, false]);
    assert.deepEqual(code(admit({ deadline: NOW })), [6, false]);
    assert.deepEqual(code(admit({ acceptBy: NOW - 1 })), [6, true]);
    assert.deepEqual(code(admit({ acceptBy: 0 })), [6, true]);
  });

  it('admission - in the order of the table: not served before duplicate, duplicate before deadline and acceptBy', () => {
    assert.equal(admit({ deadline: NOW - 5 }, { serving: 'no', known: ['req t1'] }).kind, 'drop');
    assert.equal(admit({ deadline: NOW - 5, acceptBy: 0 }, { known: ['req t1'] }).kind, 'duplicate', 'a status query for a known command is answered from what is remembered');
  });

  it('admission - an invalid envelope is answered (code 2) only when its sender can be read', () => {
    const unreadable = admitCommand('demo/a', false, decode('not json'), 0, NOW, view(), () => 'x');
    assert.equal(unreadable.kind === 'drop' && unreadable.answer, undefined);
    const readable = admitCommand('demo/a', false, decode('{"v":1,"type":"command","source":"req","destination":"*","token":"t9","priority":"urgent","payload":{}}'), 0, NOW, view(), () => 'x');
    assert.deepEqual(readable.kind === 'drop' && [readable.answer?.code, readable.answer?.to.token, readable.answer?.to.qos], [2, 't9', 0]);
  });
});
