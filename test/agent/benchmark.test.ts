import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { type Step } from '../../src/index.js';
import { startAgentKit, tempDir, type AgentKit } from './agent-kit.js';

describe('agent benchmark and presence', { timeout: 60_000 }, () => {
  let env: AgentKit;
  let dir: string;

  before(async () => {
    dir = tempDir('bench');
    env = await startAgentKit({
      services: {
        disks: { disks: { scratch: { path: dir } } },
        benchmark: { disk: 'scratch', fileBytes: 2 * 1024 * 1024, roundTrips: 5 },
      },
    });
  });

  after(async () => {
    await env?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('presence - the agent is announced with its role, services and actions', () => {
    const presence = env.caller.clients().find((client) => client.id === env.agent.bus.id);
    assert.ok(presence, 'the agent is not in the directory');
    assert.equal(presence.role, 'agent');
    assert.deepEqual(presence.services, ['disks', 'benchmark', 'components']);
    for (const action of ['system/disks/list_disks', 'system/misc/benchmark', 'system/components/discover']) assert.ok(presence.actions.includes(action), action);
    assert.ok(!presence.actions.includes('system/command/run'), 'a service the config does not enable is served');
  });

  it('benchmark - started, one progress per module with real figures, finished; its file is removed', async () => {
    const steps: Step[] = [];
    for await (const step of env.caller.call('system/misc/benchmark', { module: '' }, { target: env.agent.bus.id, timeout: 30_000 })) if (step.kind !== 'accepted') steps.push(step);
    const payloads = steps.map((step) => (step.kind === 'accepted' ? undefined : step.payload)) as Array<{ status: string; module?: string; results?: Record<string, Record<string, number>> }>;
    assert.deepEqual(payloads.map((payload) => `${payload.status} ${payload.module ?? ''}`.trim()), ['started', 'started cpu', 'started disk', 'started bus', 'finished']);
    const { cpu, disk, bus } = payloads.at(-1)!.results!;
    assert.ok(cpu!.sha256MBps! > 0 && cpu!.bytes === 64 * 1024 * 1024);
    assert.ok(disk!.writeMBps! > 0 && disk!.readMBps! > 0 && disk!.bytes === 2 * 1024 * 1024);
    assert.ok(bus!.roundTrips === 5 && bus!.p50Ms! > 0 && bus!.maxMs! >= bus!.p50Ms!);
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  it('benchmark - an unknown module is code 2 naming the field', async () => {
    await assert.rejects(env.caller.request('system/misc/benchmark', { module: 'gpu' }, { target: env.agent.bus.id }), (error: { responseCode: number; message: string }) => error.responseCode === 2 && /payload\.module/.test(error.message));
  });
});
