/**
 * The agent's actions declare PSEC's shapes as contracts (protocol §7.6; docs/agent.md): a
 * payload that breaks them is refused before the service runs, naming the field, and the
 * registry-facing `relais/contracts/get` gives every action's schemas.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { CONTRACTS_ACTION, InvalidMessageError, type ContractsAnswer } from '../../src/index.js';
import { DISK_ACTIONS } from '../../src/agent/disks.js';
import { REMOTE_COMMAND_ACTIONS } from '../../src/agent/remote-commands.js';
import { startAgentKit, tempDir, type AgentKit } from './agent-kit.js';

describe('agent contracts', { timeout: 60_000 }, () => {
  let env: AgentKit;
  let disk: string;
  before(async () => {
    disk = path.join(tempDir('contracts'), 'usb');
    fs.mkdirSync(disk);
    env = await startAgentKit({
      services: {
        disks: { disks: { usb: { path: disk } } },
        command: { ruleSet: 'test', rules: [{ name: 'echo', program: '/bin/echo', args: [{ pattern: '[a-z]+' }] }] },
      },
    });
  });
  after(() => env?.cleanup());

  it('contracts - every catalogue and command action announces its schemas (the PSEC shapes)', async () => {
    const { actions } = await env.caller.request<ContractsAnswer>(CONTRACTS_ACTION, {}, { target: env.agent.bus.id, timeout: 5000 });
    for (const action of [...Object.values(DISK_ACTIONS), ...Object.values(REMOTE_COMMAND_ACTIONS)]) assert.ok(actions[action]?.output, `${action} has a declared result`);
    assert.deepEqual((actions[DISK_ACTIONS.copyFile]!.input as { required: string[] }).required, ['source_disk', 'filepath', 'target_disk']);
    assert.deepEqual(Object.keys((actions[DISK_ACTIONS.footprint]!.output as { properties: object }).properties), ['footprint']);
  });

  it('contracts - a payload that breaks them is refused with code 2 naming the field, and nothing is written', async () => {
    await assert.rejects(env.caller.request(DISK_ACTIONS.createFile, { disk: 'usb', filepath: 'a.txt', data: 42 }, { target: env.agent.bus.id, timeout: 5000 }), (error: Error) => {
      assert.ok(error instanceof InvalidMessageError, String(error));
      assert.match(error.message, /payload\.data: /);
      return true;
    });
    assert.deepEqual(fs.readdirSync(disk), []);
  });
});
