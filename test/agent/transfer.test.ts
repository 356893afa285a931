/**
 * File transfer (docs/agent.md "File transfer"): `sendPath` / `fetchPath` against
 * an agent on a real embedded broker, with real temporary folders.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RemoteError } from '../../src/index.js';
import { PARTIAL_PREFIX } from '../../src/agent/confine.js';
import { fetchPath, sendPath } from '../../src/agent/transfer-client.js';
import { TRANSFER_ACTIONS, transferIdOf, uploadPartialNameOf, type PutBeginAnswer } from '../../src/agent/transfer-protocol.js';
import { toBase64 } from '../../src/protocol/binary.js';
import { runCli } from '../testkit/cli.js';
import { runInTerminal } from '../testkit/terminal.js';
import { hasBinary, uniqueId } from '../testkit/index.js';
import { parseAgentConfig } from '../../src/agent/config.js';
import { startAgentKit, type AgentKit } from './agent-kit.js';
import { patternFile, sendFirstChunks, sha256, tempDir } from './transfer-kit.js';

function remoteReason(error: unknown): string | undefined {
  return error instanceof RemoteError ? (error.details as { reason?: string } | undefined)?.reason : undefined;
}

describe('transfer - relais send / fetch against an agent', () => {
  let env: AgentKit;
  let disk: string;
  let readOnly: string;
  let local: string;
  const limit = 8 * 1024 * 1024;

  before(async () => {
    disk = tempDir('disk');
    readOnly = tempDir('ro');
    local = tempDir('local');
    fs.writeFileSync(path.join(readOnly, 'kept.txt'), 'read-only');
    env = await startAgentKit({
      services: {
        disks: { disks: { data: { path: disk }, ro: { path: readOnly, readOnly: true } } },
        transfer: { maxFileBytes: limit, chunkBytes: 64 * 1024, window: 4 },
      },
    });
  });
  after(async () => {
    await env.cleanup();
    for (const dir of [disk, readOnly, local]) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('send - a file arrives whole under its final name, its SHA-256 checked', async () => {
    const source = path.join(local, 'one.bin');
    patternFile(source, 1_000_003);
    const summary = await sendPath(env.caller, env.agent.bus.id, source, 'data', 'in/one.bin');
    const received = path.join(disk, 'in/one.bin');
    assert.equal(sha256(received), sha256(source));
    assert.equal(summary.files[0]!.sha256, sha256(source));
    assert.deepEqual(fs.readdirSync(path.join(disk, 'in')), ['one.bin'], 'no partial file left');
  });

  it('send - chunks travel as binary messages (no Base64 on the wire), in both directions', async () => {
    const source = path.join(local, 'wire.bin');
    patternFile(source, 200_000);
    // A bystander sees what travels (the caller's own response subscription is left alone).
    const observer = await env.kit.connect(uniqueId('observer'));
    const seen: Array<{ topic: string; raw: Buffer }> = [];
    const watch = await observer.subscribe('system/files/+/request/#', (message) => void seen.push({ topic: message.topic, raw: message.raw }));
    const answers: Buffer[] = [];
    const answerWatch = await observer.subscribe(`system/files/get_chunk/response/${env.caller.id}`, (message) => void answers.push(message.raw));
    try {
      await sendPath(env.caller, env.agent.bus.id, source, 'data', 'wire.bin');
      await fetchPath(env.caller, env.agent.bus.id, 'data', 'wire.bin', path.join(local, 'wire-back.bin'));
    } finally {
      await watch.unsubscribe();
      await answerWatch.unsubscribe();
    }
    assert.equal(sha256(path.join(local, 'wire-back.bin')), sha256(source));
    const chunks = seen.filter((message) => message.topic.startsWith(TRANSFER_ACTIONS.putChunk));
    assert.ok(chunks.length >= 4, `chunks seen: ${chunks.length}`);
    const binaryAnswers = answers.filter((answer) => answer.includes(0x0a));
    assert.ok(binaryAnswers.length >= 4, `binary get_chunk answers: ${binaryAnswers.length}`);
    assert.equal(answers.some((answer) => answer.includes('$base64')), false);
    for (const chunk of [...chunks.map((message) => message.raw), ...binaryAnswers]) {
      const lf = chunk.indexOf(0x0a);
      const header = JSON.parse(chunk.subarray(0, lf).toString()) as { body: number };
      assert.equal(header.body, chunk.length - lf - 1, 'a binary message, split at its first LF');
      assert.equal(chunk.includes('$base64'), false);
    }
    // The largest chunk costs its bytes and a header, not a third more.
    const largest = Math.max(...chunks.map((message) => message.raw.length));
    assert.ok(largest < 64 * 1024 + 1024, `largest put_chunk message: ${largest} bytes`);
  });

  it('send - a put_chunk whose framing lies (body length, missing LF) gets code 2 naming it; the upload goes on', async () => {
    const source = path.join(local, 'lies.bin');
    patternFile(source, 100_000);
    const bytes = fs.readFileSync(source);
    const hash = sha256(source);
    const agentId = env.agent.bus.id;
    const transfer = transferIdOf('put', agentId, 'data', 'lies.bin', bytes.length, hash);
    const begin = await env.caller.request<PutBeginAnswer>(TRANSFER_ACTIONS.putBegin, { transfer, disk: 'data', filepath: 'lies.bin', size: bytes.length, sha256: hash }, { target: agentId });
    const place = (body: number) => Buffer.from(JSON.stringify({ transfer, generation: begin.generation, offset: 0, body }));
    for (const [payload, pattern] of [
      [Buffer.concat([place(10), Buffer.from([0x0a]), bytes.subarray(0, 5)]), /'body' is 10 bytes, 5 follow/],
      [place(5), /one LF/],
    ] as const) {
      const error = await env.caller.request(TRANSFER_ACTIONS.putChunk, payload, { target: agentId }).catch((problem: unknown) => problem);
      assert.ok(error instanceof RemoteError || (error as { responseCode?: number }).responseCode === 2, String(error));
      assert.equal((error as { responseCode: number }).responseCode, 2);
      assert.match((error as Error).message, pattern);
    }
    const summary = await sendPath(env.caller, agentId, source, 'data', 'lies.bin');
    assert.equal(summary.files[0]!.sha256, hash);
    assert.equal(sha256(path.join(disk, 'lies.bin')), hash);
  });

  it('send - a folder tree arrives file by file', async () => {
    const tree = path.join(local, 'tree');
    fs.mkdirSync(path.join(tree, 'a/b'), { recursive: true });
    fs.writeFileSync(path.join(tree, 'top.txt'), 'top');
    fs.writeFileSync(path.join(tree, 'a/b/deep.txt'), 'deep');
    fs.writeFileSync(path.join(tree, 'a/empty.txt'), '');
    patternFile(path.join(tree, 'a/big.bin'), 300_000);
    const summary = await sendPath(env.caller, env.agent.bus.id, tree, 'data', 'copy');
    assert.deepEqual(summary.files.map((file) => file.path).sort(), ['copy/a/b/deep.txt', 'copy/a/big.bin', 'copy/a/empty.txt', 'copy/top.txt']);
    for (const name of ['top.txt', 'a/b/deep.txt', 'a/empty.txt', 'a/big.bin']) assert.equal(sha256(path.join(disk, 'copy', name)), sha256(path.join(tree, name)), name);
  });

  it('fetch - a file and a folder tree come back with matching SHA-256', async () => {
    fs.mkdirSync(path.join(disk, 'out/sub'), { recursive: true });
    patternFile(path.join(disk, 'out/file.bin'), 777_777);
    fs.writeFileSync(path.join(disk, 'out/sub/note.txt'), 'note');
    const target = path.join(local, 'fetched.bin');
    await fetchPath(env.caller, env.agent.bus.id, 'data', 'out/file.bin', target);
    assert.equal(sha256(target), sha256(path.join(disk, 'out/file.bin')));
    const folder = path.join(local, 'fetched-tree');
    const summary = await fetchPath(env.caller, env.agent.bus.id, 'data', 'out', folder);
    assert.equal(summary.files.length, 2);
    assert.equal(sha256(path.join(folder, 'file.bin')), sha256(path.join(disk, 'out/file.bin')));
    assert.equal(fs.readFileSync(path.join(folder, 'sub/note.txt'), 'utf8'), 'note');
    assert.ok(!fs.readdirSync(folder).some((name) => name.startsWith(PARTIAL_PREFIX)), 'no partial file left');
  });

  it('send - escapes out of the disk and a read-only disk are refused with code 1, nothing written', async () => {
    const source = path.join(local, 'small.txt');
    fs.writeFileSync(source, 'small');
    fs.symlinkSync(os.tmpdir(), path.join(disk, 'outside'));
    for (const [target, filepath, reason] of [
      ['data', '../escape.txt', 'parent-segment'],
      ['data', '/etc/escape.txt', 'absolute-path'],
      ['data', 'outside/escape.txt', 'symlink-escape'],
      ['ro', 'new.txt', 'read-only'],
    ] as const) {
      await assert.rejects(sendPath(env.caller, env.agent.bus.id, source, target, filepath), (error: unknown) => {
        assert.ok(error instanceof RemoteError, String(error));
        assert.equal(error.responseCode, 1);
        assert.equal(remoteReason(error), reason, error.message);
        return true;
      });
    }
    assert.ok(!fs.existsSync(path.join(os.tmpdir(), 'escape.txt')));
    assert.deepEqual(fs.readdirSync(readOnly), ['kept.txt']);
    await assert.rejects(fetchPath(env.caller, env.agent.bus.id, 'data', 'outside/x', path.join(local, 'x')), (error: unknown) => remoteReason(error) === 'symlink-escape' || remoteReason(error) === 'not-found');
  });

  it('send - a file over the size limit is refused before anything is written', async () => {
    const source = path.join(local, 'huge.bin');
    patternFile(source, limit + 1);
    await assert.rejects(sendPath(env.caller, env.agent.bus.id, source, 'data', 'limit/new-folder/huge.bin'), (error: unknown) => {
      assert.equal(remoteReason(error), 'too-large', String(error));
      assert.match((error as Error).message, /over this agent's limit of 8388608/);
      return true;
    });
    assert.ok(!fs.existsSync(path.join(disk, 'limit')), 'not even the folder was made');
  });

  it('send - a transfer paused mid-way shows only its partial file; sending again resumes from it', async () => {
    const source = path.join(local, 'paused.bin');
    patternFile(source, 1_000_000);
    const agentId = env.agent.bus.id;
    // The sender stops after three chunks: the agent has a prefix, under the partial name only.
    const { bytes, hash, transfer, begin } = await sendFirstChunks(env.caller, agentId, source, 'data', 'paused/file.bin', 3);
    assert.equal(begin.offset, 0);
    const partial = uploadPartialNameOf(env.caller.id, transfer);
    assert.deepEqual(fs.readdirSync(path.join(disk, 'paused')), [partial]);
    assert.equal(fs.statSync(path.join(disk, 'paused', partial)).size, 3 * begin.chunkBytes);
    // A chunk out of order is refused: the partial file stays a prefix.
    await assert.rejects(
      env.caller.request(TRANSFER_ACTIONS.putChunk, { transfer, generation: begin.generation, offset: 5 * begin.chunkBytes, data: toBase64(bytes.subarray(0, 10)) }, { target: agentId }),
      (error: unknown) => remoteReason(error) === 'offset-mismatch',
    );
    const summary = await sendPath(env.caller, agentId, source, 'data', 'paused/file.bin');
    assert.deepEqual(summary.resumed, [{ file: 'paused/file.bin', offset: 3 * begin.chunkBytes }]);
    assert.equal(summary.bytes, bytes.length - 3 * begin.chunkBytes, 'only the rest was sent');
    assert.equal(sha256(path.join(disk, 'paused/file.bin')), hash);
    assert.deepEqual(fs.readdirSync(path.join(disk, 'paused')), ['file.bin']);
  });

  it('relais send / fetch - the CLI moves a file both ways, with plain progress lines off a terminal', async () => {
    const source = path.join(local, 'cli.bin');
    patternFile(source, 2_500_000);
    const cliEnv = { RELAIS_BROKER: env.kit.broker.url };
    const sent = await runCli(['send', env.agent.bus.id, source, 'data:cli/'], cliEnv);
    assert.equal(sent.code, 0, sent.stderr);
    assert.match(sent.stderr, /send 100% 2\.5\/2\.5 MB [\d.]+ MB\/s ETA 0 s/);
    assert.match(sent.stdout, new RegExp(`cli/cli.bin  2500000 bytes  sha256 ${sha256(source)}`));
    const back = path.join(local, 'cli-back.bin');
    const fetched = await runCli(['fetch', env.agent.bus.id, 'data:cli/cli.bin', back], cliEnv);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.equal(sha256(back), sha256(source));
    const refused = await runCli(['send', env.agent.bus.id, source, 'ro:cli.bin'], cliEnv);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /disk ro is read-only/);
    const usage = await runCli(['send', env.agent.bus.id, source, 'no-disk-given'], cliEnv);
    assert.equal(usage.code, 2);
  });

  it('relais send - on a terminal, a progress bar with bytes, rate and ETA', { skip: hasBinary('script') ? false : 'no script(1) to give the command a terminal' }, async () => {
    const source = path.join(local, 'tty.bin');
    patternFile(source, 2_500_000);
    const shown = await runInTerminal(['send', env.agent.bus.id, source, 'data:tty.bin'], { RELAIS_BROKER: env.kit.broker.url }, 20_000);
    assert.equal(shown.code, 0, shown.stdout);
    assert.match(shown.stdout, /send \[[█░]+\] 100% \| 2\.5\/2\.5 MB \| [\d.]+ MB\/s \| ETA \d+s/);
    assert.equal(sha256(path.join(disk, 'tty.bin')), sha256(source));
  });

  it('fetch - a folder listing whose paths lead out of the local folder is refused before anything is written', async () => {
    const hostile = await env.kit.connect(uniqueId('hostile-agent'));
    await hostile.handle(TRANSFER_ACTIONS.getBegin, () => ({ type: 'folder', files: [{ path: '../escaped.txt', size: 1 }] }));
    await env.caller.waitForHandler(TRANSFER_ACTIONS.getBegin, { target: hostile.id, timeout: 5000 });
    const target = path.join(local, 'hostile');
    await assert.rejects(fetchPath(env.caller, hostile.id, 'data', 'x', target), /listed "..\/escaped.txt" in data:x: not a relative path inside the folder/);
    assert.ok(!fs.existsSync(path.join(local, 'escaped.txt')));
    assert.ok(!fs.existsSync(target));
  });

  it('config - transfer without disks, or a chunk over the message limit, stops the agent naming the field', () => {
    assert.throws(() => parseAgentConfig({ services: { transfer: {} } }), /services\.transfer: transfers go to and from the disks of services\.disks/);
    assert.throws(() => parseAgentConfig({ services: { disks: { disks: {} }, transfer: { chunkBytes: 1024 * 1024 } } }), /services\.transfer\.chunkBytes: Too big/);
  });

  it('send - a chunk that does not match the announced SHA-256 fails the check and is never moved into place', async () => {
    const agentId = env.agent.bus.id;
    const claimed = createHash('sha256').update('something else').digest('hex');
    const transfer = transferIdOf('put', agentId, 'data', 'bad/hash.txt', 5, claimed);
    const begin = await env.caller.request<PutBeginAnswer>(TRANSFER_ACTIONS.putBegin, { transfer, disk: 'data', filepath: 'bad/hash.txt', size: 5, sha256: claimed }, { target: agentId });
    await env.caller.request(TRANSFER_ACTIONS.putChunk, { transfer, generation: begin.generation, offset: 0, data: toBase64(Buffer.from('hello')) }, { target: agentId });
    await assert.rejects(env.caller.request(TRANSFER_ACTIONS.putEnd, { transfer, generation: begin.generation }, { target: agentId }), (error: unknown) => remoteReason(error) === 'hash-mismatch');
    assert.deepEqual(fs.readdirSync(path.join(disk, 'bad')), []);
  });
});
