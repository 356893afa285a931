/**
 * The registry's table with sites (protocol §13.5): a roster gives clients their site, a link
 * down makes them `unknown` with since when, up again shows their presences; pure, no bus.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { ClientTable } from '../../src/router/registry-table.js';

const alive = (since: number, actions: string[] = ['demo/echo']) => ({ kind: 'presence' as const, payload: { status: 'alive', since, seq: 1, instance: 'i1', actions, realtimeActions: [] } });
const DOWN = Date.UTC(2026, 11, 6, 4, 12, 3);

it('registry table - a roster that comes before the presence still gives the client its site', () => {
  const table = new ClientTable();
  assert.equal(table.applyRoster('poller-1', ['agent-p1']), false, 'nobody to show yet');
  table.apply('agent-p1', alive(100), 1000);
  assert.deepEqual([table.list().clients['agent-p1']!.site, table.list().clients['agent-p1']!.status], ['poller-1', 'alive']);
});

it('registry table - a site down: its clients unknown with the reason, no actions, a revision each; up: as their presences say again', () => {
  const table = new ClientTable();
  table.apply('agent-p1', alive(100), 1000);
  table.apply('agent-p2', alive(100), 1000);
  table.apply('ui', alive(100), 1000);
  table.applyRoster('poller-1', ['agent-p1', 'agent-p2']);
  const up = table.details('agent-p1')!.clients['agent-p1']!;
  const revision = table.revision;
  assert.equal(table.applySiteLink('poller-1', DOWN), true);
  assert.equal(table.revision, revision + 2, 'one revision per client changed');
  assert.equal(table.applySiteLink('poller-1', DOWN + 10_000), false, 'still down: since the first time');
  const down = table.details('agent-p1')!.clients['agent-p1']!;
  assert.deepEqual([down.status, down.reason, down.actions, down.connectedSince], ['unknown', 'site poller-1 unreachable since 2026-12-06T04:12:03.000Z', [], undefined]);
  assert.equal(table.list().clients['ui']!.status, 'alive');
  assert.equal(table.takeChanges()!.clients['agent-p2']!.status, 'unknown');
  assert.equal(table.applySiteLink('poller-1', undefined), true);
  assert.deepEqual(table.details('agent-p1')!.clients['agent-p1'], up);
});

it('registry table - a client no longer in its roster loses its site and its site-down status', () => {
  const table = new ClientTable();
  table.apply('agent-p1', alive(100), 1000);
  table.applyRoster('poller-1', ['agent-p1']);
  table.applySiteLink('poller-1', DOWN);
  assert.equal(table.applyRoster('poller-1', []), true);
  const shown = table.list().clients['agent-p1']!;
  assert.deepEqual([shown.status, 'site' in shown], ['alive', false]);
});
