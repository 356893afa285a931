/**
 * A subscription the broker's policy refuses (SUBACK 0x80) is told as such: the topic, the
 * identity, the policy, and what the default policy asks for it, instead of MQTT.js's "Subscribe
 * error: Unspecified error". Real processes: `relais start --config` from `relais init`, a
 * `service` identity given no `serves`, `relais agent` and `relais serve` as that identity; then
 * the grant the message names, on a new identity, lets the agent serve.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI_SUITE_TIMEOUT, runCli, startCli, startRelais, type RunningCli } from '../testkit/cli.js';

describe('a subscription the policy refuses, as the CLI tells it', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let root: string;
  let config: string;
  let agentConfig: string;
  let broker: RunningCli;
  let url: string;
  const tokens = new Map<string, string>();
  const running: RunningCli[] = [];

  const env = (identity: string) => ({ RELAIS_BROKER: url, RELAIS_ID: identity, RELAIS_TOKEN: tokens.get(identity)!, RELAIS_LOG_LEVEL: 'error' });
  const addIdentity = async (name: string, args: string[]) => {
    const added = await runCli(['identity', 'add', name, ...args, '--config', config], {}, 90_000);
    assert.equal(added.code, 0, added.stderr);
    tokens.set(name, /^(relais_\S+)$/m.exec(added.stdout)![1]!);
  };

  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-subscribe-refused-'));
    config = path.join(root, 'secure', 'relais.json');
    const init = await runCli(['init', '--dir', path.dirname(config)], {}, 120_000);
    assert.equal(init.code, 0, init.stderr);
    // A service whose operator forgot --serves: it may serve nothing.
    await addIdentity('vm-lacking', ['--role', 'service']);
    // The broker's lines as an operator reads them on a terminal (in a pipe, pino's JSON escapes their quotes).
    ({ cli: broker, url } = await startRelais(['--config', config, '--tls-port', '0', '--log-format', 'readable']));
    running.push(broker);
    agentConfig = path.join(root, 'agent.json');
    fs.writeFileSync(agentConfig, JSON.stringify({ services: { disks: { disks: { data: { path: root } } } } }));
  });

  after(async () => {
    for (const child of running.reverse()) await child.stop('SIGINT');
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('relais agent as a service without serves: exits 1 naming the refused topic, the policy, and the grant it lacks', async () => {
    const result = await runCli(['agent', '--id', 'vm-lacking', '--config', agentConfig], env('vm-lacking'), 120_000);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /relais: the agent did not start: the broker refused the subscription to system\/\S+\/(request|cancel)\S* \(SUBACK 0x80\): its policy does not let vm-lacking subscribe to it/);
    assert.match(result.stderr, /needs the role service and system\/\S+ in its serves.*relais identity add vm-lacking --role service --serves 'system\/#'/);
    assert.doesNotMatch(result.stderr, /Unspecified error/);
    // The broker says which rule refused it, as the message tells the user.
    await broker.waitFor(/denied subscribe to "system\/\S+" for identity vm-lacking: default-deny/, 30_000);
  });

  it('relais serve of an action it is not granted: names the action and the --serves that would grant it', async () => {
    const result = await runCli(['serve', 'billing/invoice', '--', 'cat'], env('vm-lacking'), 120_000);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /the broker refused the subscription to billing\/invoice\/(request|cancel)\S* \(SUBACK 0x80\): its policy does not let vm-lacking subscribe to it; to serve billing\/invoice, vm-lacking needs the role service and billing\/invoice in its serves/);
    assert.match(result.stderr, /--serves 'billing\/invoice'/);
  });

  it('the grant the message names lets an agent serve', async () => {
    await addIdentity('vm-granted', ['--role', 'service', '--serves', 'system/#']);
    const agent = startCli(['agent', '--id', 'vm-granted', '--config', agentConfig], env('vm-granted'));
    running.push(agent);
    await agent.waitFor(/agent vm-granted serving/, 120_000);
  });
});
