/**
 * Reading a presence and its ordering (protocol §7.1), the rule both the client's directory and
 * the router's registry apply: the table of the protocol, row by row, two instances started in
 * the same millisecond, and any delivery order of one client's presences.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Directory } from '../../src/client/presence/directory.js';
import type { Envelope } from '../../src/protocol/envelope.js';
import { isOlderPresence, judgePresence, orderAfter, parsePresence, type PresenceInfo, type PresenceOrder } from '../../src/protocol/presence.js';
import { ClientTable } from '../../src/router/registry-table.js';

type Status = PresenceInfo['status'];
const presence = (status: Status, since: number, seq: number, instance?: string, extra: Partial<PresenceInfo> = {}) => ({ status, actions: status === 'alive' ? ['a/b'] : [], since, seq, ...(instance !== undefined && { instance }), ...extra });

describe('presence - reading (protocol §7.1)', () => {
  it('presence - only status is required; the rest takes its default, non-strings are dropped from the lists', () => {
    assert.deepEqual(parsePresence({ status: 'alive', actions: ['x', 3, null, 'y'], role: 'router' }), {
      status: 'alive', actions: ['x', 'y'], realtimeActions: [], targetedActions: [], since: 0, seq: 0, role: 'router',
    });
  });

  it('presence - a status other than alive, stopped or dead, or no object at all, is invalid', () => {
    for (const payload of [{ status: 'starting' }, { actions: [] }, null, 'alive', [{ status: 'alive' }], 42]) assert.equal(parsePresence(payload), undefined, JSON.stringify(payload));
  });

  it('presence - an instance that is not a string is ignored', () => {
    assert.equal(parsePresence({ status: 'alive', instance: 7 })?.instance, undefined);
    assert.equal(parsePresence({ status: 'alive', instance: 'i-1' })?.instance, 'i-1');
  });
});

describe('presence - ordering (protocol §7.1)', () => {
  const known: PresenceOrder = { since: 100, seq: 5, instance: 'a' };

  it('presence - a smaller since is ignored, a larger since applies, whatever the status', () => {
    for (const status of ['alive', 'stopped', 'dead'] as const) {
      assert.equal(isOlderPresence(presence(status, 99, 50, 'z'), known), true, `${status} of an earlier instance`);
      assert.equal(isOlderPresence(presence(status, 101, 0, 'z'), known), false, `${status} of a later instance`);
    }
  });

  it('presence - same since, dead (the will) always applies, and the known counter is kept', () => {
    assert.equal(isOlderPresence(presence('dead', 100, 0, 'a'), known), false);
    assert.deepEqual(orderAfter(presence('dead', 100, 0, 'a'), known), { since: 100, seq: 5, instance: 'a' });
  });

  it('presence - same since, other status: applies only with a larger seq (a missing seq counts as 0)', () => {
    assert.equal(isOlderPresence(presence('alive', 100, 5, 'a'), known), true);
    assert.equal(isOlderPresence(presence('stopped', 100, 4, 'a'), known), true);
    assert.equal(isOlderPresence(presence('alive', 100, 6, 'a'), known), false);
    assert.equal(isOlderPresence({ status: 'alive', since: 100, instance: 'a' }, { since: 100, seq: 0 }), true);
  });

  it('presence - two instances started in the same millisecond: the other one\'s will never displaces this one, its other presences apply', () => {
    assert.equal(isOlderPresence(presence('dead', 100, 0, 'b'), known), true);
    assert.equal(isOlderPresence(presence('alive', 100, 1, 'b'), known), false);
    assert.equal(isOlderPresence(presence('stopped', 100, 1, 'b'), known), false);
  });

  it('presence - a new instance starts from its own counter, even after its will', () => {
    assert.deepEqual(orderAfter(presence('dead', 200, 0, 'b'), known), { since: 200, seq: 0, instance: 'b' });
    assert.equal(isOlderPresence(presence('alive', 200, 1, 'b'), orderAfter(presence('dead', 200, 0, 'b'), known)), false);
  });

  it('presence - a gone ephemeral client is forgotten, unless what came is older than what is known', () => {
    assert.equal(judgePresence(presence('dead', 100, 0, 'a', { ephemeral: true }), known), 'forget');
    assert.equal(judgePresence(presence('dead', 99, 0, 'z', { ephemeral: true }), known), 'older');
    assert.equal(judgePresence(presence('alive', 101, 1, 'z', { ephemeral: true }), known), 'apply');
  });

  it('presence - alive and stopped presences of one client, delivered in any order, end on the newest (directory and registry alike)', () => {
    // A client's history: instances with growing `since`, each publishing seq 1..n.
    const history = fc.array(fc.record({ count: fc.integer({ min: 1, max: 4 }), stops: fc.boolean() }), { minLength: 1, maxLength: 4 }).map((instances) =>
      instances.flatMap(({ count, stops }, i) =>
        Array.from({ length: count }, (_, n) => presence(stops && n === count - 1 ? 'stopped' : 'alive', 1000 + i, n + 1, `i${i}`)),
      ),
    );
    fc.assert(
      fc.property(history.chain((sent) => fc.tuple(fc.constant(sent), fc.shuffledSubarray(sent, { minLength: sent.length, maxLength: sent.length }))), ([sent, delivered]) => {
        const newest = sent[sent.length - 1]!;
        const directory = new Directory();
        const table = new ClientTable();
        for (const payload of delivered) {
          directory.update('c', { type: 'notification', source: 'c', destination: '*', payload } as Envelope);
          table.apply('c', { kind: 'presence', payload }, 1);
        }
        const held = directory.get('c')!;
        assert.deepEqual([held.since, held.seq, held.status], [newest.since, newest.seq, newest.status], 'directory');
        const detail = table.details('c')!.clients.c!;
        assert.deepEqual([detail.since, detail.status], [newest.since, newest.status], 'registry');
      }),
    );
  });
});
