/**
 * A central and two sites, each a real `relais start` process with an agent (`relais agent`)
 * on each site, the links through WAN proxies the test controls (docs/sites.md): poller-1
 * dials the central (pull) across 200 ms ± 50 ms each way, the central dials poller-2 (push).
 * What an operator at the central does and sees: `relais exec` on a site's agent with live
 * output, `relais clients` listing both sites, the Gorgone route running a command on a node,
 * a cut link failing fast while the other site and the cut site's own work go on, and the
 * cut period's rows in the central's history exactly once after the link is back.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, type Bus } from '../../src/index.js';
import type { BusEvent } from '../../src/protocol/events.js';
import type { HistoryRow } from '../../src/protocol/history.js';
import type { SitesAnswer } from '../../src/protocol/sites.js';
import { runCli, startCli, CLI_SUITE_TIMEOUT, type RunningCli } from '../testkit/cli.js';
import { startWanProxy, type WanProxy } from '../testkit/wan-proxy.js';
import { testLogger, waitFor, within } from '../testkit/index.js';

const SYNC_INTERVAL_MS = 3000;

/** Resolves once `check` holds of what `bus` knows of the sites, waiting on its site directory's changes. */
function waitForSite(bus: Bus, check: (bus: Bus) => boolean, what: string, timeout = 60_000): Promise<void> {
  return within(
    new Promise<void>((resolve) => {
      const look = () => {
        if (!check(bus)) return;
        bus.siteDirectory.off('change', look);
        resolve();
      };
      bus.siteDirectory.on('change', look);
      look();
    }),
    timeout,
    what,
  );
}
/** A link's WAN: 200 ms ± 50 ms each way (the issue's figure), on poller-1's uplink. */
const WAN = { ms: 200, jitterMs: 50 };

describe('a central and two sites (relais start ×3, agents on the sites, links through WAN proxies)', { timeout: CLI_SUITE_TIMEOUT }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-three-hosts-'));
  const processes: RunningCli[] = [];
  const proxies: WanProxy[] = [];
  const buses: Bus[] = [];
  let central: { url: string; web: string };
  let poller1: { url: string };
  let poller2: { url: string };
  let uplink: WanProxy;
  let downlink: WanProxy;
  let centralBus: Bus;
  const events: BusEvent[] = [];

  const start = async (name: string, args: string[]) => {
    const running = startCli(['start', '--port', '0', '--web-port', '0', '--data-dir', path.join(dir, name), ...args], { RELAIS_LOG_LEVEL: 'info' });
    processes.push(running);
    const [, url] = await running.waitFor(/clients connect with --broker (mqtt:\/\/\S+)/);
    const [, web] = await running.waitFor(/web page and HTTP API on (http:\/\/\S+)/);
    return { url: url!, web: web!, running };
  };
  const agent = async (id: string, broker: string) => {
    const config = path.join(dir, `${id}.json`);
    fs.writeFileSync(config, JSON.stringify({ services: { command: { ruleSet: 'three-hosts', killGrace: 0.5, rules: [{ name: 'sh', program: '/bin/sh', args: ['-c', { pattern: '.*' }] }, { name: 'shell', shell: true, command: { pattern: 'echo [a-z0-9 -]+' } }] } } }));
    const running = startCli(['agent', '--id', id, '--config', config], { RELAIS_BROKER: broker, RELAIS_LOG_LEVEL: 'info' });
    processes.push(running);
    await running.waitFor(/agent \S+ serving/);
  };
  const on = (url: string) => ({ RELAIS_BROKER: url, RELAIS_LOG_LEVEL: 'error' });
  const sitesOf = async (url: string): Promise<SitesAnswer> => {
    const result = await runCli(['sites', '--json'], on(url));
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as SitesAnswer;
  };
  const historyOf = async (url: string, args: string[]): Promise<HistoryRow[]> => {
    const result = await runCli(['history', '--json', '--limit', '10000', ...args], on(url));
    assert.equal(result.code, 0, result.stderr);
    return result.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as HistoryRow);
  };
  /** Resolves with the first event (past or coming) that `match` accepts. */
  const eventWhere = (match: (event: BusEvent) => boolean, what: string, timeout = 60_000) =>
    within(
      new Promise<BusEvent>((resolve) => {
        const check = () => {
          const found = events.find(match);
          if (found) {
            clearInterval(poll);
            resolve(found);
          }
        };
        const poll = setInterval(check, 100);
        check();
      }),
      timeout,
      what,
    );

  before(async () => {
    poller2 = await start('poller-2', ['--site', 'poller-2']);
    downlink = await startWanProxy(Number(new URL(poller2.url).port));
    proxies.push(downlink);
    const centralStart = await start('central', ['--downlink', `poller-2=${downlink.url}`, '--site-sync-interval', String(SYNC_INTERVAL_MS), '--site-sync-timeout', '20000']);
    central = centralStart;
    uplink = await startWanProxy(Number(new URL(central.url).port), { toTarget: WAN, fromTarget: WAN });
    proxies.push(uplink);
    poller1 = await start('poller-1', ['--site', 'poller-1', '--uplink', uplink.url]);
    await agent('agent-p1', poller1.url);
    await agent('agent-p2', poller2.url);
    centralBus = await connect({ id: 'three-hosts-observer', broker: central.url, logger: testLogger });
    buses.push(centralBus);
    void (async () => {
      for await (const event of centralBus.events({ since: 0 })) if ('cursor' in event) events.push(event);
    })().catch(() => {});
    // Both agents are reachable from the central once their presences crossed the links.
    await centralBus.waitForHandler('system/command/run', { target: 'agent-p1', timeout: 60_000 });
    await centralBus.waitForHandler('system/command/run', { target: 'agent-p2', timeout: 60_000 });
  });

  after(async () => {
    for (const bus of buses) await bus.close().catch(() => {});
    for (const running of processes.reverse()) await running.stop();
    for (const proxy of proxies) await proxy.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('relais exec from the central runs on a site agent with its output live, across the 200 ms link', async () => {
    const result = await runCli(['exec', 'agent-p1', '--', '/bin/sh', '-c', 'echo one; sleep 0.5; echo two >&2; sleep 0.5; echo three; exit 5'], on(central.url));
    assert.equal(result.code, 5, result.stderr);
    assert.equal(result.stdout, 'one\nthree\n');
    assert.equal(result.stderr, 'two\n');
    const pushed = await runCli(['exec', 'agent-p2', '--', '/bin/sh', '-c', 'echo pushed'], on(central.url));
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.equal(pushed.stdout, 'pushed\n');
  });

  it('a signed answer crosses the link unchanged: a requester at the central that requires signatures verifies the site handler\'s (protocol §12)', async () => {
    const keys = path.join(dir, 'signing-keys.json');
    for (const name of ['signed-handler', 'signed-caller']) {
      const made = await runCli(['identity', 'keygen', name, '--file', keys, '--out', path.join(dir, 'keys')]);
      assert.equal(made.code, 0, made.stderr);
    }
    const handler = startCli(['serve', 'demo/signed', '--id', 'signed-handler', '--signing-key', path.join(dir, 'keys', 'signed-handler.key'), '--', '/bin/sh', '-c', 'cat >/dev/null; echo \'{"signed":true}\''], { ...on(poller1.url), RELAIS_LOG_LEVEL: 'info' });
    processes.push(handler);
    await centralBus.waitForHandler('demo/signed', { target: 'signed-handler', timeout: 60_000 });
    const signedCall = ['call', 'demo/signed', '{}', '--target', 'signed-handler', '--id', 'signed-caller', '--signing-key', path.join(dir, 'keys', 'signed-caller.key'), '--verify-keys', keys];
    const verified = await runCli(signedCall, on(central.url));
    assert.equal(verified.code, 0, verified.stderr);
    assert.deepEqual((JSON.parse(verified.stdout.trim().split('\n').at(-1)!) as { payload: unknown }).payload, { signed: true });
    // The same handler unsigned: the verifying requester refuses it (what it verified above was the handler's signature).
    const signedInstance = centralBus.directory.get('signed-handler')?.instance;
    await handler.stop();
    const unsigned = startCli(['serve', 'demo/signed', '--id', 'signed-handler', '--', '/bin/sh', '-c', 'cat >/dev/null; echo \'{"signed":false}\''], { ...on(poller1.url), RELAIS_LOG_LEVEL: 'info' });
    processes.push(unsigned);
    // The new instance at the central, not the old one's presence still crossing the 200 ms link.
    await waitFor(
      () => {
        const now = centralBus.directory.get('signed-handler');
        return now?.status === 'alive' && now.instance !== signedInstance ? true : undefined;
      },
      centralBus.directory,
      'change',
      60_000,
    );
    const refused = await runCli([...signedCall, '--timeout', '5'], on(central.url));
    // The verifying requester refuses its unsigned presence, so it never sends: no handler (3), saying why.
    assert.equal(refused.code, 3, `${refused.stdout}\n${refused.stderr}`);
    assert.match(refused.stderr, /target signed-handler is not known: its presence was refused \(unsigned\), and this client verifies signatures/);
    await unsigned.stop();
  });

  it('relais clients at the central lists both sites\' clients with their site', async () => {
    const result = await runCli(['clients', '--json'], on(central.url));
    assert.equal(result.code, 0, result.stderr);
    const clients = new Map(result.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { id: string; status: string; site?: string }).map((client) => [client.id, client]));
    assert.equal(clients.get('agent-p1')?.site, 'poller-1', result.stdout);
    assert.equal(clients.get('agent-p1')?.status, 'alive');
    assert.equal(clients.get('agent-p2')?.site, 'poller-2');
    assert.equal(clients.get('site:poller-1')?.site, 'poller-1');
    // The link measures its round trip every few seconds and says it in its next status.
    await waitForSite(centralBus, (bus) => bus.sites().find((view) => view.site === 'poller-1')?.status?.rttMs !== undefined, 'a round trip of poller-1');
    const sites = await sitesOf(central.url);
    assert.equal(sites.sites['poller-1']?.status, 'up');
    assert.equal(sites.sites['poller-1']?.mode, 'pull');
    assert.equal(sites.sites['poller-2']?.mode, 'push');
    assert.ok(sites.sites['poller-1']!.rttMs! >= 300, `the round trip across 200 ms each way: ${sites.sites['poller-1']!.rttMs} ms`);
  });

  it('the Gorgone route of the central runs a command on a site\'s node and reads its log', async () => {
    const posted = await fetch(`${central.web}api/nodes/agent-p2/core/action/command`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ command: 'echo gorgone on poller-2' }]) });
    assert.equal(posted.status, 200, await posted.clone().text());
    const { token } = (await posted.json()) as { token: string };
    const finished = await within(
      (async () => {
        for (;;) {
          const answer = await fetch(`${central.web}api/nodes/agent-p2/log/${token}`);
          if (answer.status === 200) {
            const { data } = (await answer.json()) as { data: Array<{ code: number; data: string }> };
            const last = data.find((row) => row.code === 2 || row.code === 1);
            if (last) return { data, last };
          }
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      })(),
      60_000,
      'the Gorgone log of the command to end',
    );
    assert.equal(finished.last.code, 2, JSON.stringify(finished.data));
    assert.match(finished.data.map((row) => row.data).join('\n'), /gorgone on poller-2/);
  });

  it('a cut link: requests to its site fail fast, the other site and the cut site\'s own work go on; restored, the central holds every row of the cut exactly once', async () => {
    const syncsBefore = events.filter((event) => event.type === 'site.sync' && event.data.site === 'poller-1').length;
    uplink.cut();
    await eventWhere((event) => event.type === 'site.down' && event.data.site === 'poller-1', 'site.down poller-1');

    const began = Date.now();
    const refused = await runCli(['exec', 'agent-p1', '--timeout', '120', '--', '/bin/sh', '-c', 'echo never'], on(central.url));
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(refused.stderr, /site poller-1 is unreachable .*its link is down.*--wait-for-site/);
    assert.ok(Date.now() - began < 60_000, 'failed at once, not at its 120 s time-out');

    const other = await runCli(['exec', 'agent-p2', '--', '/bin/sh', '-c', 'echo still here'], on(central.url));
    assert.equal(other.code, 0, other.stderr);
    assert.equal(other.stdout, 'still here\n');

    // The cut site serves its own requests and records them.
    const tokens: string[] = [];
    for (let i = 0; i < 3; i++) {
      const local = await runCli(['call', 'system/command/run', JSON.stringify({ command: ['/bin/sh', '-c', `echo local ${i}`] }), '--target', 'agent-p1', '--json'], on(poller1.url));
      assert.equal(local.code, 0, local.stderr);
      const lines = local.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { token?: string });
      const token = lines.find((line) => typeof line.token === 'string')?.token;
      assert.ok(token, local.stdout);
      tokens.push(token);
    }
    const siteRows = new Map<string, HistoryRow[]>();
    for (const token of tokens) {
      const rows = await historyOf(poller1.url, ['--token', token]);
      assert.ok(rows.some((row) => row.kind === 'final'), `the site recorded ${token}: ${JSON.stringify(rows)}`);
      siteRows.set(token, rows);
    }

    uplink.restore();
    await eventWhere((event) => event.type === 'site.up' && event.data.site === 'poller-1' && event.cursor > 0, 'site.up poller-1');
    const caughtUp = await eventWhere(
      (event) => event.type === 'site.sync' && event.data.site === 'poller-1' && event.data.outcome === 'done' && event.data.lag === 0 && (event.data.position as number) >= Math.max(...[...siteRows.values()].flat().map((row) => row.id)),
      'a sync of poller-1 that caught up',
      SYNC_INTERVAL_MS * 10 + 60_000,
    );
    assert.ok(caughtUp);
    for (const token of tokens) {
      const rows = await historyOf(central.url, ['--token', token]);
      const expected = siteRows.get(token)!;
      assert.deepEqual(rows.map((row) => `${row.kind} ${row.source}`).sort(), expected.map((row) => `${row.kind} ${row.source}`).sort(), `the central holds ${token}'s rows once`);
      assert.ok(rows.every((row) => row.site === 'poller-1'));
    }
    // One sync of poller-1 at a time: no two syncs overlapped.
    const syncs = events.filter((event) => event.type === 'site.sync' && event.data.site === 'poller-1').slice(syncsBefore);
    const spans = syncs.map((event) => [event.time - (event.data.ms as number), event.time] as const).sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++) assert.ok(spans[i]![0] >= spans[i - 1]![1] - 5, `syncs ${i - 1} and ${i} overlapped: ${JSON.stringify(spans)}`);
    const sites = await sitesOf(central.url);
    assert.equal(sites.sites['poller-1']?.status, 'up');
    assert.equal(sites.sites['poller-1']?.sync?.lag, 0);
  });
});
