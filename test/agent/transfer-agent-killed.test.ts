/**
 * `relais fetch` and `relais send` when the agent goes away mid-transfer (docs/agent.md "File
 * transfer"): a real `relais agent` process is killed with SIGKILL while the bytes move, and
 * started again a little later; each command waits for it (the same time-outs), says so (the
 * same progress messages), resumes from what the receiving end already has, and the file
 * arrives byte-identical. Real processes: the CLI, the agent; the embedded broker in the test.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TRANSFER_ACTIONS } from '../../src/agent/transfer-protocol.js';
import { requestTopic } from '../../src/protocol/topics.js';
import { CLI_SUITE_TIMEOUT, startCli, type RunningCli } from '../testkit/cli.js';
import { setup, within, type Kit } from '../testkit/index.js';
import { patternFile, sha256, tempDir } from './transfer-kit.js';

const AGENT = 'killed-agent';
/** Large and in small chunks, a few in flight: the transfer lasts long enough to be cut mid-way, even on a fast machine. */
const SIZE = 48 * 1024 * 1024;

describe('transfer - the agent process killed mid-transfer', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let kit: Kit;
  let disk: string;
  let local: string;
  let agentConfig: string;
  let agent: RunningCli | undefined;
  const running: RunningCli[] = [];

  const startAgentProcess = async () => {
    agent = startCli(['agent', '--id', AGENT, '--config', agentConfig], { RELAIS_BROKER: kit.broker.url, RELAIS_LOG_LEVEL: 'warn' });
    running.push(agent);
    await agent.waitFor(/agent killed-agent serving/, 120_000);
  };

  before(async () => {
    kit = await setup('aedes', { observePublishers: true });
    disk = tempDir('killed-disk');
    local = tempDir('killed-local');
    agentConfig = path.join(local, 'agent.json');
    fs.writeFileSync(agentConfig, JSON.stringify({ services: { disks: { disks: { data: { path: disk } } }, transfer: { chunkBytes: 64 * 1024, window: 2 } } }));
    await startAgentProcess();
  });

  after(async () => {
    for (const child of running) await child.stop('SIGKILL');
    await kit?.cleanup();
    fs.rmSync(disk, { recursive: true, force: true });
    fs.rmSync(local, { recursive: true, force: true });
  });

  /**
   * Runs `relais <args>` and, once it has printed `killAtPercent`, kills the agent (SIGKILL), waits
   * until the command says it lost it, and starts the agent again. Resolves with the command's output.
   */
  async function transferAcrossAKill(args: string[], killAtPercent: number) {
    const transfer = startCli(args, { RELAIS_BROKER: kit.broker.url, RELAIS_LOG_LEVEL: 'warn' });
    running.push(transfer);
    const exited = new Promise<number | null>((resolve) => transfer.child.once('close', resolve));
    await transfer.waitFor(new RegExp(`relais: (send|fetch) ${killAtPercent}% `), 120_000);
    await agent!.stop('SIGKILL');
    // The command sees the agent go before the agent comes back: it must wait for it, not end.
    const interrupted = await Promise.race([transfer.waitFor(/relais: interrupted \(.*\); resuming when the connection is back/, 120_000).then(() => true), exited.then(() => false)]);
    assert.ok(interrupted, `the command did not wait for the agent:\n${transfer.output()}`);
    await startAgentProcess();
    const code = await exited;
    return { code, output: transfer.output() };
  }

  it('relais fetch - waits for the agent to be back, resumes from its local partial file, and the file arrives byte-identical', async () => {
    const remote = path.join(disk, 'remote.bin');
    patternFile(remote, SIZE);
    const target = path.join(local, 'fetched.bin');
    const { code, output } = await transferAcrossAKill(['fetch', AGENT, 'data:remote.bin', target], 30);
    assert.equal(code, 0, output);
    assert.match(output, /relais: remote\.bin: continuing from byte [1-9]\d*/, 'it resumed from what it had');
    assert.match(output, /relais: fetch 100% /);
    assert.equal(sha256(target), sha256(remote));
    assert.deepEqual(fs.readdirSync(local).filter((name) => name.includes('partial')), [], 'no partial file left');
  });

  it('relais fetch - the agent killed while it hashes the file for get_begin: the fetch waits for it as send does, then the file arrives byte-identical', async () => {
    const remote = path.join(disk, 'hashed.bin');
    patternFile(remote, 8 * 1024 * 1024);
    const target = path.join(local, 'hashed.bin');
    // Frozen, the agent takes the get_begin and never answers it: then it dies (its will fires), as if killed while hashing.
    agent!.child.kill('SIGSTOP');
    const transfer = startCli(['fetch', AGENT, 'data:hashed.bin', target], { RELAIS_BROKER: kit.broker.url, RELAIS_LOG_LEVEL: 'warn' });
    running.push(transfer);
    const exited = new Promise<number | null>((resolve) => transfer.child.once('close', resolve));
    const beginTopic = requestTopic(TRANSFER_ACTIONS.getBegin, AGENT);
    const publishers = kit.broker.publishers!;
    await within(
      new Promise<void>((resolve) => {
        const onPublish = (_client: string, topic: string) => {
          if (topic !== beginTopic) return;
          publishers.off('publish', onPublish);
          resolve();
        };
        publishers.on('publish', onPublish);
      }),
      120_000,
      'the get_begin sent to the agent',
    );
    await agent!.stop('SIGKILL');
    const interrupted = await Promise.race([transfer.waitFor(/relais: interrupted \(.*\); resuming when the connection is back/, 120_000).then(() => true), exited.then(() => false)]);
    assert.ok(interrupted, `the fetch did not wait for the agent:\n${transfer.output()}`);
    await startAgentProcess();
    const code = await exited;
    assert.equal(code, 0, transfer.output());
    assert.equal(sha256(target), sha256(remote));
  });

  it('relais send - the same: waits for the agent, resumes from the partial file the agent kept, byte-identical', async () => {
    const source = path.join(local, 'sent.bin');
    patternFile(source, SIZE);
    const { code, output } = await transferAcrossAKill(['send', AGENT, source, 'data:sent/sent.bin'], 30);
    assert.equal(code, 0, output);
    assert.match(output, /relais: sent\/sent\.bin: continuing from byte [1-9]\d*/);
    assert.equal(sha256(path.join(disk, 'sent', 'sent.bin')), sha256(source));
  });
});
