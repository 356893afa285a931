/** The link's bookkeeping alone (protocol §13.2): the remembered commands stay bounded, and who is carried or refused. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encode } from '../../src/protocol/envelope.js';
import { presenceMessage } from '../../src/protocol/messages.js';
import { parsePresence } from '../../src/protocol/presence.js';
import { MemberTable } from '../../src/sites/member-table.js';
import { TokenTable } from '../../src/sites/token-table.js';

describe('sites - remembered commands', () => {
  it('token table - at its bound the oldest command is forgotten first, and counted', () => {
    const table = new TokenTable(3);
    for (const token of ['t1', 't2', 't3']) table.remember('ops', token, { action: 'demo/a', until: 1000, toSiteRouter: false });
    const { forgotten } = table.remember('ops', 't4', { action: 'demo/b', until: 1000, toSiteRouter: false });
    assert.equal(forgotten?.action, 'demo/a');
    assert.equal(table.size, 3);
    assert.equal(table.forgottenEarly, 1);
    assert.equal(table.get('ops', 't1'), undefined);
    assert.equal(table.get('ops', 't4')?.action, 'demo/b');
  });

  it('token table - past their time commands are forgotten, and actions left without one are named once', () => {
    const table = new TokenTable(10);
    assert.equal(table.remember('ops', 't1', { action: 'demo/a', until: 100, toSiteRouter: false }).firstOfAction, true);
    assert.equal(table.remember('ops', 't2', { action: 'demo/a', until: 200, toSiteRouter: false }).firstOfAction, false);
    table.remember('ops', 't3', { action: 'demo/b', until: 300, toSiteRouter: false });
    assert.deepEqual(table.sweep(150), []);
    assert.deepEqual(table.sweep(250), ['demo/a']);
    assert.deepEqual(table.sweep(250), []);
    assert.deepEqual(table.actions(), ['demo/b']);
  });
});

const presence = (id: string, actions: string[]) => {
  const bytes = Buffer.from(encode(presenceMessage(id, { status: 'alive', actions, since: 1, seq: 1 })));
  return { bytes, info: parsePresence({ status: 'alive', actions, since: 1, seq: 1 }) };
};

describe('sites - who a link carries', () => {
  it('member table - a site client whose id the central or another site has is refused, with the reason, until the other is gone', () => {
    const table = new MemberTable('poller-1');
    table.centralPresence('dup-1', true);
    table.otherRoster('poller-2', ['dup-2']);
    for (const id of ['agent-p1', 'dup-1', 'dup-2']) table.sitePresence(id, presence(id, ['demo/install']));
    const change = table.settle();
    assert.deepEqual(change.added, ['agent-p1']);
    assert.deepEqual(change.refused, [
      { id: 'dup-1', reason: 'a client of the central has this id' },
      { id: 'dup-2', reason: 'a client of site poller-2 has this id' },
    ]);
    assert.deepEqual(table.settle().refused, [], 'a refusal is reported once');
    table.centralPresence('dup-1', false);
    assert.deepEqual(table.settle().added, ['dup-1']);
    assert.deepEqual(table.roster(), { site: 'poller-1', clients: ['agent-p1', 'dup-1'], refused: [{ id: 'dup-2', reason: 'a client of site poller-2 has this id' }] });
  });

  it('member table - the central side subscribes to the commands and cancels of what the carried clients serve, and an action no topic can hold is skipped', () => {
    const table = new MemberTable('poller-1');
    table.sitePresence('agent-p1', presence('agent-p1', ['demo/install', 'bad/request/name']));
    table.siteRouter(['relais/history/get']);
    table.settle();
    const filters = [...table.centralFilters()].sort();
    assert.deepEqual(filters, [
      'demo/install/cancel',
      'demo/install/request',
      'demo/install/request/agent-p1',
      'relais/contracts/get/cancel',
      'relais/contracts/get/request/agent-p1',
      'relais/history/get/cancel',
      'relais/history/get/request/site:poller-1',
      'relais/logs/get/cancel',
      'relais/logs/get/request/agent-p1',
    ]);
  });
});
