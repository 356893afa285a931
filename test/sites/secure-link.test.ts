/**
 * A pulling site with security on, set up as docs/sites.md says: `relais init` on the central
 * and on the site, the site's identity issued at the central (`relais identity add poller-1
 * --role site --cert`), the uplink over TLS with that certificate, an agent on the site with a
 * certificate of the site's CA. Then, from the central: its admin runs a command on the site's
 * agent and finds it in the central's history with its site; a client without the agents'
 * role is refused by the central's policy; revoking the site's identity at the central cuts
 * the live link, and requests to the site then fail at once.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { HistoryRow } from '../../src/protocol/history.js';
import type { SitesAnswer } from '../../src/protocol/sites.js';
import { freePort } from '../testkit/brokers.js';
import { runCli, startCli, CLI_SUITE_TIMEOUT, type RunningCli } from '../testkit/cli.js';

describe('a pulling site with security on (relais init on both, a site certificate, TLS)', { timeout: CLI_SUITE_TIMEOUT }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-secure-link-'));
  const at = (...parts: string[]) => path.join(dir, ...parts);
  const processes: RunningCli[] = [];
  let centralTls: number;
  let central: RunningCli;
  let site: RunningCli;
  /** CLI credentials of `identity` at the central (its certificate over TLS). */
  const asCentral = (identity: string) => ['--broker', `mqtts://localhost:${centralTls}`, '--ca', at('central', 'ca.crt'), '--cert', at('central', `${identity}.crt`), '--key', at('central', `${identity}.key`), '--id', identity];
  const quiet = { RELAIS_LOG_LEVEL: 'error' };

  before(async () => {
    centralTls = await freePort();
    const siteTls = await freePort();
    for (const [name, port, admin] of [['central', centralTls, 'admin'], ['poller', siteTls, 'poller-admin']] as const) {
      const made = await runCli(['init', '--dir', at(name), '--admin', admin, '--tls-host', '127.0.0.1', '--tls-port', String(port)]);
      assert.equal(made.code, 0, made.stderr);
    }
    const issued = [
      ['identity', 'add', 'poller-1', '--role', 'site', '--cert', '--config', at('central', 'relais.json')],
      ['identity', 'add', 'carol', '--role', 'client', '--cert', '--config', at('central', 'relais.json')],
      ['identity', 'add', 'agent-p1', '--role', 'service', '--serves', 'system/#', '--cert', '--config', at('poller', 'relais.json')],
    ];
    for (const args of issued) {
      const result = await runCli(args);
      assert.equal(result.code, 0, result.stderr);
    }
    const common = ['--port', '0', '--web-port', '0', '--web-host', '127.0.0.1'];
    central = startCli(['start', '--config', at('central', 'relais.json'), ...common, '--site-sync-interval', '2000'], { RELAIS_LOG_LEVEL: 'info' });
    processes.push(central);
    await central.waitFor(/security on/);
    site = startCli(
      ['start', '--config', at('poller', 'relais.json'), ...common, '--site', 'poller-1', '--uplink', `mqtts://localhost:${centralTls}`, '--uplink-ca', at('central', 'ca.crt'), '--uplink-cert', at('central', 'poller-1.crt'), '--uplink-key', at('central', 'poller-1.key')],
      { RELAIS_LOG_LEVEL: 'info' },
    );
    processes.push(site);
    await site.waitFor(/site poller-1: link up \(pull/);
    fs.writeFileSync(at('agent.json'), JSON.stringify({ services: { command: { ruleSet: 'secure-link', rules: [{ name: 'sh', program: '/bin/sh', args: ['-c', { pattern: '.*' }] }] } } }));
    const agent = startCli(['agent', '--id', 'agent-p1', '--config', at('agent.json'), '--broker', `mqtts://localhost:${siteTls}`, '--ca', at('poller', 'ca.crt'), '--cert', at('poller', 'agent-p1.crt'), '--key', at('poller', 'agent-p1.key')], { RELAIS_LOG_LEVEL: 'info' });
    processes.push(agent);
    await agent.waitFor(/agent agent-p1 serving/);
    // Serving on the site is not yet known at the central: its presence crosses the link after
    // the central granted the link's subscriptions (protocol §13.3). The central's registry says when.
    await central.waitFor(/registry: client agent-p1 alive/);
  });

  after(async () => {
    for (const running of processes.reverse()) await running.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("the central's admin runs a command on the site's agent over the TLS link, and the central's history holds it with its site", async () => {
    const result = await runCli(['exec', 'agent-p1', ...asCentral('admin'), '--wait-for-site', '60s', '--', '/bin/sh', '-c', 'echo over tls'], quiet);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'over tls\n');
    // The live rows get their site from the next sync, every 2 s here. An `accepted` row is
    // there only if the requester knew the agent's presence when it sent (protocol §4.7: no
    // acknowledgement asked of a handler it does not know yet), which a loaded machine can delay.
    const expected = ['command', 'progress', 'final'];
    const deadline = Date.now() + 60_000;
    let rows: HistoryRow[] = [];
    while (Date.now() < deadline) {
      const history = await runCli(['history', ...asCentral('admin'), '--site', 'poller-1', '--action', 'system/command/run', '--steps', '--json'], quiet);
      assert.equal(history.code, 0, history.stderr);
      rows = history.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as HistoryRow);
      if (expected.every((kind) => rows.some((row) => row.kind === kind))) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    assert.deepEqual([...new Set(rows.map((row) => row.kind))].filter((kind) => kind !== 'accepted').sort(), [...expected].sort(), JSON.stringify(rows));
    assert.ok(rows.every((row) => row.site === 'poller-1'));
    // A one-shot CLI command authenticated as admin is a session of it (protocol §2.1: admin~cli-…).
    assert.match(rows.find((row) => row.kind === 'command')?.source ?? '', /^admin~cli-/);
  });

  it("a client without the agents' role is refused by the central's policy, before anything crosses", async () => {
    const result = await runCli(['exec', 'agent-p1', ...asCentral('carol'), '--', '/bin/sh', '-c', 'echo should not run'], quiet);
    assert.equal(result.code, 126, result.stderr);
    assert.equal(result.stdout, '');
  });

  it("revoking the site's identity at the central cuts the live link: requests to the site then fail at once", async () => {
    const revoked = await runCli(['identity', 'revoke', 'poller-1', '--config', at('central', 'relais.json')]);
    assert.equal(revoked.code, 0, revoked.stderr);
    await site.waitFor(/site poller-1: link down/);
    const sites = await runCli(['sites', ...asCentral('admin'), '--json'], quiet);
    assert.equal(sites.code, 0, sites.stderr);
    assert.equal((JSON.parse(sites.stdout) as SitesAnswer).sites['poller-1']?.status, 'down');
    const refused = await runCli(['exec', 'agent-p1', ...asCentral('admin'), '--timeout', '120', '--', '/bin/sh', '-c', 'echo never'], quiet);
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(refused.stderr, /site poller-1 is unreachable/);
  });
});
