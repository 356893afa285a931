/**
 * Two real `relais start` processes, a central and a site that dials it (pull, protocol §13.1)
 * through a WAN of 200 ± 50 ms each way: `relais call` on the central reaches a `relais serve`
 * handler on the site, with its progress. Needs `npx tsc -p tsconfig.build.json` first.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { decode } from '../../src/protocol/envelope.js';
import { siteClientsTopic, siteStatusTopic, type SiteClients, type SiteStatus } from '../../src/protocol/sites.js';
import { presenceTopic } from '../../src/protocol/topics.js';
import { CLI_SUITE_TIMEOUT, runCli, startCli, type RunningCli } from '../testkit/cli.js';
import { waitFor } from '../testkit/index.js';
import { startWanProxy, type WanProxy } from '../testkit/wan-proxy.js';

const WAN = { ms: 200, jitterMs: 50 };
const LINE_WAIT = 120_000;

describe('sites - relais start with --uplink, through a 200 ± 50 ms WAN', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let dir: string;
  let central: RunningCli;
  let site: RunningCli | undefined;
  let wan: WanProxy;
  let centralUrl: string;
  let siteUrl: string;
  let observer: mqtt.MqttClient;
  const latest = new Map<string, Buffer>();
  const arrivals = new EventEmitter();
  const running: RunningCli[] = [];
  const payloadOf = <T>(topic: string): T | undefined => {
    const bytes = latest.get(topic);
    const decoded = bytes && bytes.length > 0 ? decode(bytes) : undefined;
    return decoded?.ok ? (decoded.envelope.payload as T) : undefined;
  };
  const atCentral = <T>(check: () => T | undefined, what: string) =>
    waitFor(check, arrivals, 'message', LINE_WAIT).catch((error: Error) => {
      throw new Error(`${what} at the central: ${error.message}`);
    });

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-sites-'));
    central = startCli(['start', '--port', '0', '--web-port', '0', '--data-dir', path.join(dir, 'central')], { RELAIS_LOG_LEVEL: 'error' });
    [, centralUrl] = (await central.waitFor(/listening on (mqtt:\/\/\S+)/, LINE_WAIT)) as unknown as [string, string];
    wan = await startWanProxy(Number(new URL(centralUrl).port), { toTarget: WAN, fromTarget: WAN });
    observer = mqtt.connect(centralUrl, { clientId: `observer-${process.pid}`, protocolVersion: 4, log: () => {} } as mqtt.IClientOptions);
    observer.on('message', (topic, payload) => {
      latest.set(topic, payload);
      arrivals.emit('message');
    });
    await new Promise((resolve) => observer.once('connect', resolve));
    await observer.subscribeAsync(['relais/presence/+', 'relais/sites/#'], { qos: 1 });
  });

  after(async () => {
    await Promise.all(running.map((child) => child.stop()));
    await site?.stop();
    await central?.stop();
    await observer?.endAsync(true);
    await wan?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('start - clear usage errors (exit 2) for a bad site name, an uplink from the central, a bad downlink', async () => {
    const data = ['--port', '0', '--no-web', '--no-router', '--data-dir', path.join(dir, 'usage')];
    const cases: Array<[string[], RegExp]> = [
      [['--site', 'poller:1'], /--site: site name "poller:1" may not contain ':'/],
      [['--uplink', 'mqtts://central:8883'], /--uplink is for a site: give this start its site name with --site <name>/],
      [['--downlink', 'poller-1'], /--downlink takes <site name>=<url>, got poller-1/],
      [['--site', 'poller-1', '--uplink', 'ftp://central'], /the URL must start with mqtt:\/\/, mqtts:\/\/, ws:\/\/ or wss:\/\//],
    ];
    for (const [flags, message] of cases) {
      const result = await runCli(['start', ...flags, ...data]);
      assert.equal(result.code, 2, `${flags.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
    }
  });

  it('start --site poller-1 --uplink: says so, comes up, and its clients and router appear on the central', async () => {
    site = startCli(['start', '--site', 'poller-1', '--uplink', wan.url, '--port', '0', '--web-port', '0', '--data-dir', path.join(dir, 'poller-1')], { RELAIS_LOG_LEVEL: 'error' });
    [, siteUrl] = (await site.waitFor(/listening on (mqtt:\/\/\S+)/, LINE_WAIT)) as unknown as [string, string];
    await site.waitFor(new RegExp(`relais: site poller-1: uplink to ${wan.url.replace(/[.]/g, '\\.')} \\(pull\\)`), LINE_WAIT);
    await site.waitFor(/site poller-1: link up \(pull/, LINE_WAIT);
    const status = await atCentral(() => (payloadOf<SiteStatus>(siteStatusTopic('poller-1'))?.status === 'up' ? payloadOf<SiteStatus>(siteStatusTopic('poller-1')) : undefined), 'the link up');
    assert.equal(status.mode, 'pull');
    // The site's router answers at site:poller-1 (protocol §13.3).
    await atCentral(() => payloadOf<SiteClients>(siteClientsTopic('poller-1'))?.clients.includes('site:poller-1') || undefined, 'site:poller-1 in the roster');
  });

  it('relais call on the central reaches relais serve on the site, with its progress', async () => {
    const env = { RELAIS_LOG_LEVEL: 'error' };
    const server = startCli(
      ['serve', 'cli/install', '--id', 'agent-p1', '--broker', siteUrl, '--', process.execPath, '-e',
        `let input = ''; process.stdin.on('data', (c) => (input += c)).on('end', () => {
          for (const p of [20, 50]) console.log(JSON.stringify({ progress: p, step: 'step ' + p }));
          console.log(JSON.stringify({ installed: JSON.parse(input).name, on: 'poller-1' }));
        });`],
      env,
    );
    running.push(server);
    await server.waitFor(/serving cli\/install/, LINE_WAIT);
    await atCentral(() => payloadOf<{ status: string }>(presenceTopic('agent-p1'))?.status === 'alive' || undefined, 'agent-p1 alive');
    const result = await runCli(['call', 'cli/install', '{"name":"weather"}', '--target', 'agent-p1', '--broker', centralUrl, '--timeout', '60000'], env);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { kind: string; progress?: number; payload?: unknown });
    assert.deepEqual(
      lines.filter((line) => line.kind !== 'accepted').map((line) => (line.kind === 'progress' ? `progress ${line.progress}` : `${line.kind} ${JSON.stringify(line.payload)}`)),
      ['progress 0.2', 'progress 0.5', 'final {"installed":"weather","on":"poller-1"}'],
    );
    assert.ok(wan.bytes.toTarget > 0 && wan.bytes.fromTarget > 0);
  });

  it('Ctrl-C on the site: it says down at the central before it stops', async () => {
    assert.equal(await site!.stop('SIGINT'), 0);
    site = undefined;
    const status = await atCentral(() => (payloadOf<SiteStatus>(siteStatusTopic('poller-1'))?.status === 'down' ? payloadOf<SiteStatus>(siteStatusTopic('poller-1')) : undefined), 'the link down');
    // Said by the stopping site (with since), not by the broker's will (without).
    assert.equal(typeof status.since, 'number');
  });
});
