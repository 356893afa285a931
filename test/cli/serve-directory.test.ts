/**
 * `relais serve --directory on-demand` (protocol §7.2): a handler that never requests never
 * subscribes to every presence. Shown on a broker that refuses `relais/presence/+` by dropping
 * the connection (as Aedes does for MQTT 3.1.1): the on-demand handler starts, stays connected and
 * answers a raw MQTT command (an agent starts too); the default one cannot start there.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PRESENCE_FILTER } from '../../src/protocol/topics.js';
import { CLI_SUITE_TIMEOUT, runCli, startCli, type RunningCli } from '../testkit/cli.js';
import { startHookedAedes, type HookedAedes } from '../testkit/hooked-aedes.js';
import { uniqueId } from '../testkit/index.js';
import { rawCommand } from '../testkit/raw-command.js';

describe('relais serve and agent --directory', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let broker: HookedAedes;
  let serving: RunningCli | undefined;

  before(async () => {
    broker = await startHookedAedes({ refuse: (topic) => topic === PRESENCE_FILTER });
  });
  after(async () => {
    await serving?.stop();
    await broker?.close();
  });

  it('serve --directory on-demand - on a broker that refuses relais/presence/+, it serves and answers a raw MQTT command', async () => {
    const action = `${uniqueId('ondemand')}/echo`;
    const id = uniqueId('served');
    serving = startCli(['serve', action, '--broker', broker.url, '--id', id, '--directory', 'on-demand', '--', 'cat']);
    await serving.waitFor(/serving .* as /, 20_000);
    const answer = await rawCommand(broker.url, action, id, { hello: 'on demand' });
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
