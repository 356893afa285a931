/**
 * `relais clients` as a user runs it (the real binary; `npm test` builds it first), against a
 * broker with a registry running and one without.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { formatTable } from '../../src/cli/clients.js';
import { startRegistry, type Registry } from '../../src/router/registry.js';
import { CLI_SUITE_TIMEOUT, runCli, startCli, type RunningCli } from '../testkit/cli.js';
import { setup, testLogger, uniqueId, type Kit } from '../testkit/index.js';

describe('relais clients', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let kit: Kit;
  let bare: Kit;
  let registry: Registry;
  let routerId: string;
  const running: RunningCli[] = [];
  const env = { RELAIS_LOG_LEVEL: 'error' };
  before(async () => {
    [kit, bare] = await Promise.all([setup('aedes'), setup('aedes')]);
    routerId = uniqueId('router');
    registry = await startRegistry(await kit.connect(routerId), { logger: testLogger, notifyInterval: 50 });
  });
  after(async () => {
    await Promise.all(running.map((child) => child.stop()));
    await registry?.close();
    await Promise.all([kit?.cleanup(), bare?.cleanup()]);
  });

  it('clients - in a pipe, one JSON line per client with its status, exit 0', async () => {
    const id = uniqueId('listed');
    await kit.connect(id, { info: { version: '3.1' } });
    const result = await runCli(['clients', '--broker', kit.broker.url], env);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { id: string; status: string; version?: string; pid?: number });
    const listed = lines.find((line) => line.id === id);
    assert.deepEqual([listed?.status, listed?.version, listed?.pid], ['alive', '3.1', process.pid]);
    assert.equal(lines.find((line) => line.id === routerId)?.status, 'alive');
  });

  it('clients --watch - a line for each client that comes and goes', async () => {
    const watcher = startCli(['clients', '--watch', '--broker', kit.broker.url], env);
    running.push(watcher);
    await watcher.waitFor(/watching the client registry/);
    const id = uniqueId('newcomer');
    const newcomer = await kit.connect(id);
    await watcher.waitFor(new RegExp(`\\{"id":"${id}",[^\\n]*"status":"alive"`));
    await newcomer.close();
    await watcher.waitFor(new RegExp(`\\{"id":"${id}",[^\\n]*"status":"stopped"`));
    assert.equal(await watcher.stop('SIGINT'), 0);
  });

  it('clients - exit 3 and says the router is not running when no registry answers', async () => {
    const result = await runCli(['clients', '--broker', bare.broker.url], env);
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /no client registry answers relais\/clients\/detail\/get: the router is not running/);
  });

  it('clients - the terminal table has a row per client, sorted, with its program, actions and site, and shows remote text harmlessly', () => {
    const table = formatTable(
      new Map([
        ['b-client', { status: 'dead' as const, host: 'vm\u001b[2J', pid: 7, lastSeen: 0, info: { program: 'sub #' } }],
        ['a-client', { status: 'alive' as const, host: 'vm', version: '1.0', connectedSince: 0, lastSeen: 0, actions: ['demo/install', 'demo/echo'], info: { role: 'router' } }],
        ['c-agent', { status: 'unknown' as const, site: 'poller-1', lastSeen: 0 }],
      ]),
      12_000,
    );
    const lines = table.split('\n');
    assert.match(lines[0]!, /^ID\s+PROGRAM\s+STATUS\s+ACTIONS\s+VERSION\s+HOST\s+PID\s+UP SINCE\s+LAST SEEN\s+SITE$/);
    assert.match(lines[1]!, /^a-client\s+\(router\)\s+alive\s+demo\/install, demo\/echo\s+1\.0\s+vm\s+-\s+1970-01-01 00:00:00\s+12 s ago\s+-$/);
    assert.match(lines[2]!, /^b-client\s+sub #\s+dead\s+-\s+-\s+"vm\\u001b\[2J"\s+7\s+-\s+12 s ago/);
    assert.match(lines[3]!, /^c-agent\s+-\s+unknown\s+.*poller-1$/);
    assert.equal(lines[4], '3 clients');
  });
});
