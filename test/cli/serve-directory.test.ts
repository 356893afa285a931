/**
 * `relais serve --directory on-demand` (protocol §7.2): a handler that never requests never
 * subscribes to every presence. Shown on a broker that refuses `relais/presence/+` by dropping
 * the connection (as Aedes does for MQTT 3.1.1): the on-demand handler starts, stays connected and
 * answers a raw MQTT command (an agent starts too); the default one cannot start there.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { PRESENCE_FILTER } from '../../src/protocol/topics.js';
import { CLI_SUITE_TIMEOUT, runCli, startCli, type RunningCli } from '../testkit/cli.js';
import { startHookedAedes, type HookedAedes } from '../testkit/hooked-aedes.js';
import { uniqueId, within } from '../testkit/index.js';

describe('relais serve and agent --directory', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let broker: HookedAedes;
  let serving: RunningCli | undefined;
  let raw: MqttClient | undefined;

  before(async () => {
    broker = await startHookedAedes({ refuse: (topic) => topic === PRESENCE_FILTER });
  });
  after(async () => {
    await serving?.stop();
    await raw?.endAsync();
    await broker?.close();
  });

  it('serve --directory on-demand - on a broker that refuses relais/presence/+, it serves and answers a raw MQTT command', async () => {
    const action = `${uniqueId('ondemand')}/echo`;
    const id = uniqueId('served');
    serving = startCli(['serve', action, '--broker', broker.url, '--id', id, '--directory', 'on-demand', '--', 'cat']);
    await serving.waitFor(/serving .* as /, 20_000);
    raw = await mqtt.connectAsync(broker.url, { clientId: uniqueId('raw'), protocolVersion: 4 });
    const responseTopic = `${action}/response/${raw.options.clientId}`;
    await raw.subscribeAsync(responseTopic, { qos: 1 });
    const final = new Promise<{ code: number; payload: unknown }>((resolve) =>
      raw!.on('message', (_topic, body) => {
        const response = JSON.parse(body.toString()) as { code: number; payload: unknown; accepted?: boolean };
        if (!response.accepted) resolve(response);
      }),
    );
    const command = { v: 1, type: 'command', source: raw.options.clientId, destination: id, token: uniqueId('t'), payload: { hello: 'on demand' }, deadline: Date.now() + 15_000 };
    await raw.publishAsync(`${action}/request/${id}`, JSON.stringify(command), { qos: 1 });
    const answer = await within(final, 15_000, 'the answer of the on-demand handler');
    assert.deepEqual([answer.code, answer.payload], [0, { hello: 'on demand' }]);
    assert.equal(broker.connections.get(id), 1, 'connected once: never dropped for a refused subscription');
  });

  it('agent --directory on-demand - starts on that broker too, and stays connected', async () => {
    const id = uniqueId('agent');
    const agent = startCli(['agent', '--id', id, '--broker', broker.url, '--directory', 'on-demand']);
    try {
      await agent.waitFor(/agent .* serving .*; Ctrl-C stops/, 20_000);
      assert.equal(broker.connections.get(id), 1, 'connected once');
    } finally {
      assert.equal(await agent.stop('SIGINT'), 0);
    }
  });

  it('serve without --directory - the same broker drops it for relais/presence/+: it does not start', async () => {
    const result = await runCli(['serve', `${uniqueId('full')}/echo`, '--broker', broker.url, '--', 'cat']);
    assert.notEqual(result.code, 0, result.stderr);
    assert.match(result.stderr, /relais\/presence\/\+/);
  });
});
