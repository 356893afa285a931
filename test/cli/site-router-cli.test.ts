/**
 * Sites through the CLI (protocol §13.5): `relais start`'s router, in its worker thread, gets
 * `--site-sync-interval` and `--site-sync-timeout` and pulls a site's history; `relais history
 * --site` and `relais clients` show the site. The site's router is a real router process
 * (test/fixtures/site-router-process.ts) reached as `site:poller-9` on the same broker, and the
 * link's retained status and roster are published by the test in the link's form (the link
 * itself is src/sites, tested on its own; see test/router/site-sync.test.ts for why this is the
 * honest set-up).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { connect, type Bus } from '../../src/index.js';
import type { BusEvent } from '../../src/protocol/events.js';
import { siteClientsTopic, siteStatusTopic } from '../../src/protocol/sites.js';
import { SqliteHistoryStore } from '../../src/router/index.js';
import { CLI_SUITE_TIMEOUT, runCli, startRelais, type RelaisStart } from '../testkit/cli.js';
import { testLogger, within } from '../testkit/index.js';

const SITE = 'poller-9';
const SITE_ROUTER = fileURLToPath(new URL('../fixtures/site-router-process.ts', import.meta.url));

describe('relais start pulls a site, relais history --site and relais clients show it', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let dataDir: string;
  let start: RelaisStart;
  let siteRouter: ChildProcess;
  let bus: Bus;
  let env: Record<string, string>;
  const syncs: BusEvent[] = [];

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-sites-cli-'));
    const siteDb = path.join(dataDir, 'site.db');
    const seed = new SqliteHistoryStore(siteDb);
    seed.append(Array.from({ length: 3 }, (_, i) => ({ token: `s-${i}`, kind: 'command' as const, action: 'demo/local', source: 'agent-p9', etime: 1000 + i, data: '{}', size: 2, truncated: false, digest: `s:${i}` })));
    seed.close();
    start = await startRelais(['--no-web', '--site-sync-interval', '300', '--site-sync-timeout', '5000', '--data-dir', path.join(dataDir, 'central')]);
    const { url } = start;
    env = start.env;
    siteRouter = spawn(process.execPath, ['--import', 'tsx', SITE_ROUTER, url, SITE, siteDb], { stdio: ['ignore', 'pipe', 'inherit'] });
    await within(new Promise<void>((resolve) => siteRouter.stdout!.on('data', (chunk: Buffer) => String(chunk).includes('READY') && resolve())), 60_000, 'the site router ready');
    bus = await connect({ id: 'agent-p9', broker: url, realtimeLane: false, logger: testLogger });
    await bus.waitForHandler('relais/history/get', { target: `site:${SITE}`, timeout: 60_000 });
    await bus.subscribe('relais/events/notification', (message) => {
      if (message.envelope.source !== 'relais-router') return;
      for (const event of (message.envelope.payload as { events: BusEvent[] }).events) if (event.type === 'site.sync') syncs.push(event);
    });
    const asLink = (topic: string, payload: Record<string, unknown>) =>
      bus.publish(topic, { v: 1, type: 'notification', source: 'link-poller-9', destination: '*', ts: Date.now(), payload }, { retain: true });
    asLink(siteClientsTopic(SITE), { site: SITE, clients: ['agent-p9', `site:${SITE}`] });
    asLink(siteStatusTopic(SITE), { site: SITE, status: 'up', since: Date.now(), mode: 'push' });
  });

  after(async () => {
    siteRouter?.kill('SIGKILL');
    await bus?.close();
    await start?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it("start - the router thread gets --site-sync-interval: the site's history is pulled, then again every 300 ms, under one lock", async () => {
    const end = Date.now() + 60_000;
    while (syncs.length < 3) {
      assert.ok(Date.now() < end, `three syncs within 60 s (default interval: 60 s); got ${JSON.stringify(syncs)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.deepEqual([syncs[0]!.data.outcome, syncs[0]!.data.rows], ['done', 3], JSON.stringify(syncs[0]));
    assert.ok(syncs.slice(1).every((event) => event.data.outcome === 'done' && event.data.rows === 0), JSON.stringify(syncs));
  });

  it("history --site - the site's rows, JSON lines in a pipe, each with its site; the central's own rows are not among them", async () => {
    const result = await runCli(['history', '--site', SITE, '--json'], env);
    assert.equal(result.code, 0, result.stderr);
    const rows = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { token: string; site?: string });
    assert.deepEqual(rows.map((row) => [row.token, row.site]), [['s-0', SITE], ['s-1', SITE], ['s-2', SITE]]);
    const none = await runCli(['history', '--site', 'poller-0', '--json'], env);
    assert.deepEqual([none.code, none.stdout], [0, '']);
  });

  it("clients - a site's client has its site (JSON lines in a pipe)", async () => {
    const result = await runCli(['clients', '--json'], env);
    assert.equal(result.code, 0, result.stderr);
    const clients = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { id: string; site?: string; status: string });
    assert.deepEqual(clients.find((client) => client.id === 'agent-p9'), { ...clients.find((client) => client.id === 'agent-p9'), site: SITE, status: 'alive' });
    assert.equal(clients.find((client) => client.id === 'relais-router')!.site, undefined);
  });

  it('router - a bad --site or --site-sync-interval is a usage error (exit 2) naming it', async () => {
    const site = await runCli(['router', '--site', 'a:b'], env);
    assert.equal(site.code, 2, site.stderr);
    assert.match(site.stderr, /--site: site name "a:b" may not contain ':'/);
    const interval = await runCli(['router', '--site-sync-interval', '0'], env);
    assert.equal(interval.code, 2, interval.stderr);
    assert.match(interval.stderr, /--site-sync-interval must be a whole number of ms/);
  });
});
