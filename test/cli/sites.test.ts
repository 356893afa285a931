/**
 * The CLI about sites (protocol §13.4): `--wait-for-site`, the one line and exit 3 for a site
 * whose link is down, and `relais sites`. Real binary, real embedded broker. The sites'
 * retained topics are published by a test peer that STANDS FOR A LINK, and `relais/sites/get`
 * is answered by a test client that STANDS FOR THE ROUTER (its answer shaped as SitesAnswer):
 * the real link and router are tested on their own and end to end by the three-host test.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { formatSites } from '../../src/cli/sites.js';
import { SITES_ACTION, siteClientsTopic, siteStatusTopic, type Bus, type SitesAnswer } from '../../src/index.js';
import { notificationMessage } from '../../src/protocol/messages.js';
import { CLI_SUITE_TIMEOUT, runCli, startCli } from '../testkit/cli.js';
import { setup, uniqueId, type Kit } from '../testkit/index.js';

const SINCE = Date.UTC(2026, 11, 6, 4, 12, 3);

/** What a central's router answers, as the router's own tests check it: one site up and synced, one down mid-way. */
const ANSWER: SitesAnswer = {
  site: 'central',
  sites: {
    'poller-1': {
      status: 'up',
      since: Date.UTC(2026, 11, 6, 3, 0, 0),
      mode: 'pull',
      rttMs: 41.6,
      carried: { down: 12, up: 30 },
      clients: ['agent-p1', 'site:poller-1'],
      sync: { position: 1234, positionCtime: Date.UTC(2026, 11, 6, 4, 10, 0), lag: 0, lastSync: { at: Date.UTC(2026, 11, 6, 4, 11, 0), outcome: 'done', rows: 57, ms: 80 } },
    },
    'poller-2': {
      status: 'down',
      since: SINCE,
      mode: 'push',
      clients: ['agent-p2', 'agent-p2b', 'site:poller-2'],
      refused: [{ id: 'web-1', reason: 'a client of the central has this id' }],
      sync: { position: 880, lag: 42, lastSync: { at: Date.UTC(2026, 11, 6, 4, 12, 0), outcome: 'timeout', rows: 0, ms: 60_000 } },
    },
  },
};

describe('relais and sites (protocol §13.4)', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let kit: Kit;
  let bare: Kit;
  let link: Bus;
  const member = uniqueId('agent-p7');
  const env = { RELAIS_LOG_LEVEL: 'error' };

  before(async () => {
    [kit, bare] = await Promise.all([setup('aedes'), setup('aedes')]);
    link = await kit.connect(uniqueId('link-standin'));
    const agent = await kit.connect(member);
    await agent.handle('demo/sites/cli', () => 'ran');
    const routerStandin = await kit.connect(uniqueId('router-standin'));
    await routerStandin.handle(SITES_ACTION, () => ANSWER);
    // The link's stand-in: poller-7's link is down, agent-p7 its client.
    link.publish(siteClientsTopic('poller-7'), notificationMessage({ source: link.id, payload: { site: 'poller-7', clients: [member] }, priority: 'normal' }), { retain: true });
    link.publish(siteStatusTopic('poller-7'), notificationMessage({ source: link.id, payload: { site: 'poller-7', status: 'down', since: SINCE, mode: 'pull' }, priority: 'normal' }), { retain: true });
    const signal = AbortSignal.timeout(10_000);
    while (link.sites().find((view) => view.site === 'poller-7')?.status?.status !== 'down') await once(link.siteDirectory, 'change', { signal });
  });
  after(async () => {
    await Promise.all([kit?.cleanup(), bare?.cleanup()]);
  });

  it('sites - relais call to a client of a site whose link is down: one line naming the site and since when, exit 3, at once', async () => {
    const result = await runCli(['call', 'demo/sites/cli', '--target', member, '--timeout', '60', '--broker', kit.broker.url], env);
    assert.equal(result.code, 3, result.stderr);
    assert.equal(result.stderr, 'relais: site poller-7 is unreachable since 2026-12-06T04:12:03Z (its link is down); --wait-for-site 10m waits for it\n');
    const error = JSON.parse(result.stdout.trim()) as { kind: string; code: number; error: { name: string; details: unknown } };
    assert.deepEqual([error.kind, error.code, error.error.name, error.error.details], ['error', 3, 'SiteUnreachableError', { site: 'poller-7', since: SINCE }]);
  });

  it('sites - --wait-for-site waits for the link: sent once it is up; past the wait, exit 3 saying it did not come back; a bad duration is a usage error', async () => {
    const result = await runCli(['call', 'demo/sites/cli', '--target', member, '--wait-for-site', '500ms', '--timeout', '60', '--broker', kit.broker.url], env);
    assert.equal(result.code, 3, result.stderr);
    assert.equal(result.stderr, 'relais: site poller-7 is unreachable since 2026-12-06T04:12:03Z (its link is down); it did not come back within --wait-for-site 500ms\n');
    const bad = await runCli(['exec', member, '--wait-for-site', 'soon', '--broker', kit.broker.url, '--', '/bin/true'], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--wait-for-site must be a duration like 30s or 10m, got soon/);

    // -v shows the library's line saying the request waits; the link comes back then, and the command is sent.
    const waiting = startCli(['call', 'demo/sites/cli', '--target', member, '--wait-for-site', '10m', '--timeout', '900', '-v', '--broker', kit.broker.url], env);
    try {
      await waiting.waitFor(/request waits for its handler's site to come back: site poller-7 is unreachable/);
      link.publish(siteStatusTopic('poller-7'), notificationMessage({ source: link.id, payload: { site: 'poller-7', status: 'up', since: Date.now(), mode: 'pull' }, priority: 'normal' }), { retain: true });
      await waiting.waitFor(/"kind":"final","payload":"ran"/);
      assert.equal(await new Promise((resolve) => (waiting.child.exitCode !== null ? resolve(waiting.child.exitCode) : waiting.child.once('exit', resolve))), 0);
    } finally {
      await waiting.stop();
      link.publish(siteStatusTopic('poller-7'), notificationMessage({ source: link.id, payload: { site: 'poller-7', status: 'down', since: SINCE, mode: 'pull' }, priority: 'normal' }), { retain: true });
      const signal = AbortSignal.timeout(10_000);
      while (link.sites().find((view) => view.site === 'poller-7')?.status?.status !== 'down') await once(link.siteDirectory, 'change', { signal });
    }
  });

  it('sites - relais sites prints the table of the router\'s answer; --json the answer itself', async () => {
    const table = await runCli(['sites', '--broker', kit.broker.url], env);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^SITE\s+STATUS\s+SINCE\s+MODE\s+RTT\s+CLIENTS\s+SYNCED TO\s+LAG\s+LAST SYNC$/);
    assert.match(lines[1]!, /^poller-1\s+up\s+2026-12-06 03:00:00\s+pull\s+42 ms\s+2\s+1234 \(2026-12-06 04:10:00\)\s+0\s+done, 57 rows, 2026-12-06 04:11:00$/);
    assert.match(lines[2]!, /^poller-2\s+down\s+2026-12-06 04:12:03\s+push\s+-\s+3 \(1 refused\)\s+880\s+42\s+timeout, 0 rows, 2026-12-06 04:12:00$/);
    assert.equal(lines[3], "2 sites, 1 down (this router's site: central)");
    assert.equal(table.stdout, `${formatSites(ANSWER)}\n`);

    const json = await runCli(['sites', '--json', '--broker', kit.broker.url], env);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), ANSWER);
  });

  it('sites - relais sites --watch asks the router again when a link changes', async () => {
    // An hour between periodic questions: a second answer within the test comes from the change.
    const watching = startCli(['sites', '--watch', '--json', '--interval', '3600', '--broker', kit.broker.url], env);
    try {
      await watching.waitFor(/watching the sites/);
      const answers = () => watching.output().split('\n').filter((line) => line.startsWith('{"site":"central"')).length;
      assert.equal(answers(), 1);
      link.publish(siteClientsTopic('poller-7'), notificationMessage({ source: link.id, payload: { site: 'poller-7', clients: [member, 'agent-p7b'] }, priority: 'normal' }), { retain: true });
      await watching.waitFor(/^\{"site":"central".*\n\{"site":"central"/ms);
      assert.equal(answers(), 2);
    } finally {
      assert.equal(await watching.stop('SIGINT'), 0);
    }
  });

  it('sites - relais sites without a router: exit 3 saying so', async () => {
    const result = await runCli(['sites', '--broker', bare.broker.url], env);
    assert.equal(result.code, 3);
    assert.match(result.stderr, /no router is answering: relais sites asks the router/);
  });
});
