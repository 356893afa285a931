/**
 * File transfer resumption (docs/agent.md "File transfer"): after an agent
 * restart, and across a connection cut for real (a TCP proxy whose sockets are destroyed)
 * while a 200 MB file is sent and while a file is fetched.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { Bus } from '../../src/index.js';
import { startAgent, type Agent } from '../../src/agent/agent.js';
import { parseAgentConfig } from '../../src/agent/config.js';
import { fetchPath, sendPath } from '../../src/agent/transfer-client.js';
import { TRANSFER_ACTIONS } from '../../src/agent/transfer-protocol.js';
import { startTcpProxy } from '../testkit/tcp-proxy.js';
import { testLogger, uniqueId } from '../testkit/index.js';
import { startAgentKit } from './agent-kit.js';
import { patternFile, sendFirstChunks, sha256, tempDir } from './transfer-kit.js';

describe('transfer - an agent restarted mid-transfer', () => {
  it('send - the new agent finds the partial file on disk, hashes it again and the transfer resumes from it', async () => {
    const disk = tempDir('restart-disk');
    const local = tempDir('restart-local');
    const config = { services: { disks: { disks: { data: { path: disk } } }, transfer: { chunkBytes: 64 * 1024 } } };
    const env = await startAgentKit(config);
    let second: Agent | undefined;
    try {
      const source = path.join(local, 'file.bin');
      patternFile(source, 700_000);
      const agentId = env.agent.bus.id;
      const { hash, begin } = await sendFirstChunks(env.caller, agentId, source, 'data', 'r/file.bin', 4);
      await env.agent.close();
      second = await startAgent({ id: agentId, config: parseAgentConfig(config), logger: testLogger, connection: { broker: env.kit.broker.url } });
      await env.caller.waitForHandler(TRANSFER_ACTIONS.putBegin, { target: agentId, timeout: 5000 });
      const summary = await sendPath(env.caller, agentId, source, 'data', 'r/file.bin');
      assert.deepEqual(summary.resumed, [{ file: 'r/file.bin', offset: 4 * begin.chunkBytes }]);
      assert.equal(sha256(path.join(disk, 'r/file.bin')), hash);
    } finally {
      await second?.close();
      // The first agent too, when the test failed before closing it: left open it would reconnect for ever.
      await env.cleanup();
      fs.rmSync(disk, { recursive: true, force: true });
      fs.rmSync(local, { recursive: true, force: true });
    }
  });
});

describe('transfer - the agent restarted while a sender is sending', () => {
  it('send - the sender waits for the agent to be back and continues from what it kept on disk', { timeout: 60_000 }, async () => {
    const disk = tempDir('restart-live-disk');
    const local = tempDir('restart-live-local');
    const config = { services: { disks: { disks: { data: { path: disk } } }, transfer: { chunkBytes: 64 * 1024 } } };
    const env = await startAgentKit(config);
    const agentId = env.agent.bus.id;
    let second: Promise<Agent> | undefined;
    try {
      const size = 8 * 1024 * 1024;
      const source = path.join(local, 'file.bin');
      patternFile(source, size);
      let stoppedAt = 0;
      let stopped: Promise<void> | undefined;
      const retries: string[] = [];
      const summary = await sendPath(env.caller, agentId, source, 'data', 'live/file.bin', {
        onProgress(done) {
          if (stoppedAt > 0 || done < size / 2) return;
          stoppedAt = done;
          stopped = env.agent.close();
        },
        // The agent comes back only once the sender has seen it go: the sender must wait for it.
        onRetry(error) {
          // A busy machine may make a chunk late before the agent stops: only a retry after the stop brings it back.
          if (!stopped) return;
          retries.push((error as Error).name);
          second ??= stopped.then(() => startAgent({ id: agentId, config: parseAgentConfig(config), logger: testLogger, connection: { broker: env.kit.broker.url } }));
        },
      });
      assert.ok(retries.length >= 1, 'the sender saw the agent go');
      assert.ok(second, 'the agent was restarted');
      assert.equal(summary.resumed.length, 1, JSON.stringify(summary.resumed));
      assert.ok(summary.resumed[0]!.offset >= stoppedAt, `resumed at ${summary.resumed[0]!.offset}, stopped at ${stoppedAt}`);
      assert.equal(sha256(path.join(disk, 'live/file.bin')), sha256(source));
    } finally {
      await (await second)?.close();
      // The first agent too, when the test failed before closing it: left open it would reconnect for ever.
      await env.cleanup();
      fs.rmSync(disk, { recursive: true, force: true });
      fs.rmSync(local, { recursive: true, force: true });
    }
  });
});

describe('transfer - a fetch across a lost connection', () => {
  it('fetch - the connection is cut in the middle; the fetch continues from its local partial file and the SHA-256 matches', { timeout: 60_000 }, async () => {
    const disk = tempDir('fetch-cut-disk');
    const local = tempDir('fetch-cut-local');
    const env = await startAgentKit({ services: { disks: { disks: { data: { path: disk } } }, transfer: { chunkBytes: 64 * 1024 } } });
    const proxy = await startTcpProxy(Number(new URL(env.kit.broker.url).port));
    try {
      const size = 16 * 1024 * 1024;
      patternFile(path.join(disk, 'remote.bin'), size);
      const fetcher = await env.kit.connect(uniqueId('fetcher'), { broker: proxy.url });
      let cutAt = 0;
      fetcher.on('offline', () => (proxy.refuse = false));
      const target = path.join(local, 'fetched.bin');
      const summary = await fetchPath(fetcher, env.agent.bus.id, 'data', 'remote.bin', target, {
        onProgress(done) {
          if (cutAt === 0 && done >= size / 2) {
            cutAt = done;
            proxy.refuse = true;
            assert.ok(proxy.cut() > 0);
          }
        },
      });
      assert.ok(cutAt > 0);
      assert.equal(summary.resumed.length, 1, JSON.stringify(summary.resumed));
      assert.ok(summary.resumed[0]!.offset >= cutAt, `resumed at ${summary.resumed[0]!.offset}, cut at ${cutAt}`);
      assert.equal(summary.bytes, size, 'each byte fetched once: nothing before the cut was asked again');
      assert.equal(sha256(target), sha256(path.join(disk, 'remote.bin')));
      assert.deepEqual(fs.readdirSync(local), ['fetched.bin']);
    } finally {
      await proxy.close();
      await env.cleanup();
      fs.rmSync(disk, { recursive: true, force: true });
      fs.rmSync(local, { recursive: true, force: true });
    }
  });
});

describe('transfer - a 200 MB file across a lost connection', () => {
  it('send - the connection is cut in the middle; the transfer resumes from an offset > 0 and the SHA-256 matches', { timeout: 180_000 }, async () => {
    const disk = tempDir('big-disk');
    const local = tempDir('big-local');
    const env = await startAgentKit({ services: { disks: { disks: { data: { path: disk } } }, transfer: {} } });
    const proxy = await startTcpProxy(Number(new URL(env.kit.broker.url).port));
    let sender: Bus | undefined;
    try {
      const size = 200 * 1024 * 1024;
      const source = path.join(local, 'big.bin');
      patternFile(source, size);
      sender = await env.kit.connect(uniqueId('sender'), { broker: proxy.url });
      let cutAt = 0;
      sender.on('offline', () => (proxy.refuse = false)); // it is down for real: let it back
      const summary = await sendPath(sender, env.agent.bus.id, source, 'data', 'big/big.bin', {
        onProgress(done) {
          if (cutAt === 0 && done >= size / 2) {
            cutAt = done;
            proxy.refuse = true;
            assert.ok(proxy.cut() > 0);
          }
        },
      });
      assert.ok(cutAt > 0, 'the connection was cut');
      assert.ok(proxy.accepted >= 2, 'the sender connected again');
      // One resumption for the cut; a busy machine may add some (a chunk answered too late is asked again from where the agent stands).
      assert.ok(summary.resumed.length >= 1, 'the transfer resumed');
      assert.ok(summary.resumed[0]!.offset > 0, 'resumed from what the agent had, not from 0');
      assert.ok(summary.resumed[0]!.offset >= cutAt, `resumed at ${summary.resumed[0]!.offset}, at least what was acknowledged before the cut (${cutAt})`);
      const offsets = summary.resumed.map((resumed) => resumed.offset);
      assert.deepEqual(offsets, [...offsets].sort((a, b) => a - b), `each resumption from further on: ${offsets.join(', ')}`);
      assert.ok(summary.bytes <= size, `${summary.bytes} bytes acknowledged in all: what the agent had was not sent again`);
      assert.equal(sha256(path.join(disk, 'big/big.bin')), sha256(source));
      assert.deepEqual(fs.readdirSync(path.join(disk, 'big')), ['big.bin']);
    } finally {
      await proxy.close();
      await env.cleanup();
      fs.rmSync(disk, { recursive: true, force: true });
      fs.rmSync(local, { recursive: true, force: true });
    }
  });
});
