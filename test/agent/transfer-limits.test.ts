/**
 * Transfers tied to their identity and bounded (docs/agent.md "Limits"): an upload or a
 * download belongs to the identity that began it; one identity holds at most its share of
 * slots and bytes; a transfer that moves nothing is freed quickly and its partial file
 * removed, a slow one that moves is not; stale partial files are swept at start and after.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Bus } from '../../src/index.js';
import { BusyError, NotAuthorizedError, NotSentError, RemoteError } from '../../src/index.js';
import { startAgent, type Agent } from '../../src/agent/agent.js';
import { parseAgentConfig } from '../../src/agent/config.js';
import { PARTIAL_PREFIX } from '../../src/agent/confine.js';
import { fetchPath, sendPath } from '../../src/agent/transfer-client.js';
import { TRANSFER_ACTIONS, transferIdOf, uploadPartialNameOf, type GetFileAnswer, type PutBeginAnswer } from '../../src/agent/transfer-protocol.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import { toBase64 } from '../../src/protocol/binary.js';
import { DEFAULT_POLICY_DATA } from '../../src/security/default-policy.js';
import { parsePolicy, type PolicyInput } from '../../src/security/policy.js';
import { IdentityStore } from '../../src/security/identities.js';
import mqtt from 'mqtt';
import { connect } from '../../src/index.js';
import { testLogger, uniqueId, waitFor } from '../testkit/index.js';
import { entriesUnder, startAgentKit, type AgentKit } from './agent-kit.js';
import { patternFile, sendFirstChunks, sha256, tempDir } from './transfer-kit.js';

function reasonOf(error: unknown): string | undefined {
  return error instanceof RemoteError ? (error.details as { reason?: string } | undefined)?.reason : undefined;
}
/** Which limit a code-8 refusal names. */
function limitOf(error: unknown): string | undefined {
  return error instanceof BusyError ? (error.details as { limit?: string } | undefined)?.limit : undefined;
}

/** What a put_begin of `file` to `disk:filepath` on `agent` says, with the id `relais send` would use. */
function uploadOf(agent: string, file: string, disk: string, filepath: string) {
  const bytes = fs.readFileSync(file);
  const hash = sha256(file);
  return { bytes, begin: { transfer: transferIdOf('put', agent, disk, filepath, bytes.length, hash), disk, filepath, size: bytes.length, sha256: hash } };
}

const partialsUnder = (root: string) => [...entriesUnder(root).keys()].filter((entry) => path.basename(entry).startsWith(PARTIAL_PREFIX)).sort();

describe('transfer - each transfer belongs to the identity that began it', { timeout: 60_000 }, () => {
  let env: AgentKit;
  let disk: string;
  let local: string;
  let mallory: Bus;

  before(async () => {
    disk = tempDir('owner-disk');
    local = tempDir('owner-local');
    env = await startAgentKit({ services: { disks: { disks: { data: { path: disk } } }, transfer: { chunkBytes: 64 * 1024, window: 2 } } });
    mallory = await env.kit.connect(uniqueId('mallory'));
  });
  after(async () => {
    await env?.cleanup();
    fs.rmSync(disk, { recursive: true, force: true });
    fs.rmSync(local, { recursive: true, force: true });
  });

  it('send - another identity that begins, chunks and ends the same transfer id first does not stop or touch it', async () => {
    const agent = env.agent.bus.id;
    const source = path.join(local, 'alice.bin');
    patternFile(source, 500_000);
    const { begin } = uploadOf(agent, source, 'data', 'inbox/alice.bin');
    // Mallory predicts alice's transfer id (it is derived from public facts) and takes it first, for another file.
    const taken = await mallory.request<PutBeginAnswer>(TRANSFER_ACTIONS.putBegin, { ...begin, filepath: 'inbox/mallory.bin', size: 3, sha256: sha256(source) }, { target: agent });
    assert.equal(taken.offset, 0);
    await mallory.request(TRANSFER_ACTIONS.putChunk, { transfer: begin.transfer, generation: taken.generation, offset: 0, data: toBase64(Buffer.from('bad')) }, { target: agent });
    const retries: unknown[] = [];
    const summary = await sendPath(env.caller, agent, source, 'data', 'inbox/alice.bin', { onRetry: (error) => retries.push(error) });
    assert.deepEqual(retries, [], 'alice never had to retry');
    assert.deepEqual(summary.resumed, []);
    assert.equal(sha256(path.join(disk, 'inbox/alice.bin')), sha256(source));
  });

  it('send - chunks, ends and begins of another identity on an upload in progress are refused or their own; the owner resumes untouched', async () => {
    const agent = env.agent.bus.id;
    const source = path.join(local, 'paused.bin');
    patternFile(source, 400_000);
    const { bytes, begin } = uploadOf(agent, source, 'data', 'paused/alice.bin');
    const alice = await env.caller.request<PutBeginAnswer>(TRANSFER_ACTIONS.putBegin, begin, { target: agent });
    await env.caller.request(TRANSFER_ACTIONS.putChunk, { transfer: begin.transfer, generation: alice.generation, offset: 0, data: toBase64(bytes.subarray(0, alice.chunkBytes)) }, { target: agent });
    // Mallory knows the id and the generation: still not his.
    for (const [action, payload] of [
      [TRANSFER_ACTIONS.putChunk, { transfer: begin.transfer, generation: alice.generation, offset: alice.chunkBytes, data: toBase64(Buffer.alloc(alice.chunkBytes)) }],
      [TRANSFER_ACTIONS.putEnd, { transfer: begin.transfer, generation: alice.generation }],
    ] as const) {
      await assert.rejects(mallory.request(action, payload, { target: agent }), (error: unknown) => reasonOf(error) === 'unknown-transfer', action);
    }
    // His put_begin of the same id and file is an upload of his own, from 0, in a partial file of his own.
    const his = await mallory.request<PutBeginAnswer>(TRANSFER_ACTIONS.putBegin, begin, { target: agent });
    assert.equal(his.offset, 0);
    assert.deepEqual(partialsUnder(path.join(disk, 'paused')).sort(), [uploadPartialNameOf(env.caller.id, begin.transfer), uploadPartialNameOf(mallory.id, begin.transfer)].sort());
    // Alice goes on from her offset, with her generation.
    const summary = await sendPath(env.caller, agent, source, 'data', 'paused/alice.bin');
    assert.deepEqual(summary.resumed, [{ file: 'paused/alice.bin', offset: alice.chunkBytes }]);
    assert.equal(sha256(path.join(disk, 'paused/alice.bin')), sha256(source));
  });

  it('fetch - another identity can neither read nor end a download it did not begin', async () => {
    const agent = env.agent.bus.id;
    patternFile(path.join(disk, 'shared.bin'), 300_000);
    const alice = await env.caller.request<GetFileAnswer>(TRANSFER_ACTIONS.getBegin, { disk: 'data', filepath: 'shared.bin' }, { target: agent });
    await assert.rejects(mallory.request(TRANSFER_ACTIONS.getChunk, { transfer: alice.transfer, offset: 0, length: 1024 }, { target: agent }), (error: unknown) => reasonOf(error) === 'unknown-transfer');
    await mallory.request(TRANSFER_ACTIONS.getEnd, { transfer: alice.transfer }, { target: agent });
    const chunk = await env.caller.request<Buffer>(TRANSFER_ACTIONS.getChunk, { transfer: alice.transfer, offset: 0, length: 1024 }, { target: agent });
    assert.equal(chunk.length, 1024, 'alice still reads her download');
    await env.caller.request(TRANSFER_ACTIONS.getEnd, { transfer: alice.transfer }, { target: agent });
  });
});

describe('transfer - with security on, identities enforced by the broker', { timeout: 60_000 }, () => {
  let dir: string;
  let disk: string;
  let broker: EmbeddedBroker;
  let agent: Agent;
  const buses: Bus[] = [];
  const tokens = new Map<string, string>();
  const as = async (identity: string) => {
    const bus = await connect({ id: identity, broker: broker.url!, username: identity, password: tokens.get(identity)!, logger: testLogger });
    buses.push(bus);
    return bus;
  };

  before(async () => {
    dir = tempDir('secure');
    disk = path.join(dir, 'disk');
    fs.mkdirSync(disk);
    const store = new IdentityStore(path.join(dir, 'identities.json'));
    for (const [identity, role] of [['files-agent', 'service'], ['alice', 'client'], ['mallory', 'client'], ['root', 'admin'], ['watcher', 'observer']] as const) tokens.set(identity, (await store.add(identity, [role])).token);
    // The default policy, with the operator's grants for file transfers spelled out (docs/security.md): clients and admins call them, agents serve them.
    const data = structuredClone(DEFAULT_POLICY_DATA) as PolicyInput;
    data.rules = [
      ...data.rules,
      { name: 'file transfers with agents', roles: ['client', 'admin'], publish: ['system/files/+/request/+'], subscribe: ['system/files/+/response/${id}'] },
      { name: 'agents serve file transfers', roles: ['service'], subscribe: ['system/files/+/request/${id}'], publish: ['system/files/+/response/+'] },
    ];
    // An agent serves what its identity's `serves` lists (the default policy's least privilege).
    data.identities = { ...data.identities, 'files-agent': { serves: ['system/#'] } };
    broker = await startEmbeddedBroker({ port: 0, security: { identities: store.file, policy: parsePolicy(data, 'test policy') }, log: () => {} });
    agent = await startAgent({
      id: 'files-agent',
      config: parseAgentConfig({ services: { disks: { disks: { data: { path: disk } } }, transfer: { chunkBytes: 64 * 1024, window: 2 } } }),
      logger: testLogger,
      connection: { broker: broker.url!, username: 'files-agent', password: tokens.get('files-agent')! },
    });
  });
  after(async () => {
    await Promise.all(buses.map((bus) => bus.close()));
    await agent?.close();
    await broker?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('send - alice (client) sends while mallory (client) begins her transfer id as himself and forges her source; her send never has to retry', async () => {
    const alice = await as('alice');
    await alice.waitForHandler(TRANSFER_ACTIONS.putBegin, { target: 'files-agent', timeout: 10_000 });
    // Mallory speaks raw MQTT with his own credentials: as himself, and with alice's name in the envelope.
    const raw = await mqtt.connectAsync(broker.url!, { clientId: 'mallory', username: 'mallory', password: tokens.get('mallory')!, protocolVersion: 4, reconnectPeriod: 0 });
    try {
      const source = path.join(dir, 'alice.bin');
      patternFile(source, 600_000);
      const { begin } = uploadOf('files-agent', source, 'data', 'alice.bin');
      let pokes = 0;
      const poke = () => {
        for (const as_ of ['mallory', 'alice']) {
          pokes += 1;
          const command = { type: 'command', source: as_, destination: 'files-agent', token: `poke-${pokes}`, payload: begin };
          void raw.publishAsync(`${TRANSFER_ACTIONS.putBegin}/request/files-agent`, JSON.stringify(command), { qos: 0 }).catch(() => {});
        }
      };
      poke();
      const retries: string[] = [];
      const summary = await sendPath(alice, 'files-agent', source, 'data', 'alice.bin', { onProgress: poke, onRetry: (error) => retries.push((error as Error).message) });
      assert.ok(pokes > 3, `${pokes} pokes`);
      assert.deepEqual(retries, [], 'alice had to retry');
      assert.equal(summary.files[0]!.sha256, sha256(source));
      assert.equal(sha256(path.join(disk, 'alice.bin')), sha256(source));
    } finally {
      await raw.endAsync(true);
    }
  });

  it('send - an admin sends and fetches too; an observer may not begin a transfer (refused by the broker: never sent, or NotAuthorized)', async () => {
    const root = await as('root');
    await root.waitForHandler(TRANSFER_ACTIONS.putBegin, { target: 'files-agent', timeout: 10_000 });
    const source = path.join(dir, 'root.bin');
    patternFile(source, 100_000);
    await sendPath(root, 'files-agent', source, 'data', 'root.bin');
    await fetchPath(root, 'files-agent', 'data', 'root.bin', path.join(dir, 'root-back.bin'));
    assert.equal(sha256(path.join(dir, 'root-back.bin')), sha256(source));
    const watcher = await as('watcher');
    const { begin } = uploadOf('files-agent', source, 'data', 'watcher.bin');
    await assert.rejects(watcher.request(TRANSFER_ACTIONS.putBegin, begin, { target: 'files-agent', timeout: 20_000 }), (error: Error) => error instanceof NotAuthorizedError || error instanceof NotSentError);
    assert.ok(!fs.existsSync(path.join(disk, 'watcher.bin')));
  });
});

describe('transfer - the slots and bytes of one identity are bounded', { timeout: 60_000 }, () => {
  let env: AgentKit;
  let disk: string;
  let local: string;

  before(async () => {
    disk = tempDir('quota-disk');
    local = tempDir('quota-local');
    env = await startAgentKit({ services: { disks: { disks: { data: { path: disk } } }, transfer: { chunkBytes: 64 * 1024, maxBytesPerIdentity: 1_000_000 } } });
  });
  after(async () => {
    await env?.cleanup();
    fs.rmSync(disk, { recursive: true, force: true });
    fs.rmSync(local, { recursive: true, force: true });
  });

  it('sixteen put_begin from one client get four slots (code 8 after); every other identity still sends and fetches', async () => {
    const agent = env.agent.bus.id;
    const hog = await env.kit.connect(uniqueId('hog'));
    const answers = await Promise.allSettled(
      Array.from({ length: 16 }, (_, i) => hog.request(TRANSFER_ACTIONS.putBegin, { transfer: transferIdOf('hog', i), disk: 'data', filepath: `hog/${i}.bin`, size: 50_000, sha256: '0'.repeat(64) }, { target: agent })),
    );
    assert.equal(answers.filter((answer) => answer.status === 'fulfilled').length, 4);
    for (const answer of answers) {
      if (answer.status === 'fulfilled') continue;
      assert.equal((answer.reason as BusyError).responseCode, 8, String(answer.reason));
      assert.equal(limitOf(answer.reason), 'maxTransfersPerIdentity');
      assert.match((answer.reason as Error).message, /has 4 transfers open on this agent \(services\.transfer\.maxTransfersPerIdentity\)/);
    }
    const source = path.join(local, 'mine.bin');
    patternFile(source, 200_000);
    await sendPath(env.caller, agent, source, 'data', 'mine.bin');
    const back = path.join(local, 'back.bin');
    await fetchPath(env.caller, agent, 'data', 'mine.bin', back);
    assert.equal(sha256(back), sha256(source));
  });

  it('the sessions of one identity <identity>~<session> share its slots (protocol §2.1): a second session gets code 8 once the first holds four', async () => {
    const agent = env.agent.bus.id;
    const identity = uniqueId('tabs');
    const first = await env.kit.connect(`${identity}~a`);
    const second = await env.kit.connect(`${identity}~b`);
    const begin = (bus: typeof first, i: number) =>
      bus.request(TRANSFER_ACTIONS.putBegin, { transfer: transferIdOf('tabs', 100 + i), disk: 'data', filepath: `tabs/${i}.bin`, size: 1000, sha256: '0'.repeat(64) }, { target: agent });
    for (let i = 0; i < 4; i++) await begin(first, i);
    await assert.rejects(begin(second, 4), (error: BusyError) => {
      assert.equal(error.responseCode, 8, String(error));
      assert.equal(limitOf(error), 'maxTransfersPerIdentity');
      assert.match(error.message, new RegExp(`^${identity} has 4 transfers open`));
      return true;
    });
  });

  it('a second session of an identity resumes the upload its first session began (one owner, protocol §2.1), as a second relais send does', async () => {
    const agent = env.agent.bus.id;
    const identity = uniqueId('sender');
    const first = await env.kit.connect(`${identity}~cli-1`);
    const source = path.join(local, 'resumed.bin');
    patternFile(source, 300_000);
    const started = await sendFirstChunks(first, agent, source, 'data', 'resumed.bin', 2);
    await first.close();
    const second = await env.kit.connect(`${identity}~cli-2`);
    const again = await second.request<PutBeginAnswer>(TRANSFER_ACTIONS.putBegin, { transfer: started.transfer, disk: 'data', filepath: 'resumed.bin', size: started.bytes.length, sha256: started.hash }, { target: agent });
    assert.equal(again.offset, 2 * started.begin.chunkBytes, 'it continues from where the first session stopped');
    const other = await env.kit.connect(`${uniqueId('other')}~cli-1`);
    const theirs = await other.request<PutBeginAnswer>(TRANSFER_ACTIONS.putBegin, { transfer: started.transfer, disk: 'data', filepath: 'resumed.bin', size: started.bytes.length, sha256: started.hash }, { target: agent });
    assert.equal(theirs.offset, 0, "another identity's session begins its own");
  });

  it('the sizes of one identity\'s open uploads are bounded: code 8 while others are open, code 1 too-large for a file over the bound', async () => {
    const agent = env.agent.bus.id;
    const filler = await env.kit.connect(uniqueId('filler'));
    const begin = (i: number, size: number) => filler.request(TRANSFER_ACTIONS.putBegin, { transfer: transferIdOf('filler', i), disk: 'data', filepath: `filler/${i}.bin`, size, sha256: '0'.repeat(64) }, { target: agent });
    await begin(1, 600_000);
    await assert.rejects(begin(2, 600_000), (error: unknown) => (error as BusyError).responseCode === 8 && limitOf(error) === 'maxBytesPerIdentity');
    await assert.rejects(begin(3, 1_000_001), (error: unknown) => reasonOf(error) === 'too-large' && /services\.transfer\.maxBytesPerIdentity/.test((error as Error).message));
    assert.deepEqual(fs.existsSync(path.join(disk, 'filler/3.bin')), false);
    await begin(4, 400_000); // within what is left
  });
});

describe('transfer - a silent transfer is freed after the silence its progress earns', { timeout: 60_000 }, () => {
  let env: AgentKit;
  let disk: string;
  let local: string;
  const stallTimeout = 1;
  const idleTimeout = 6;
  const ABANDONED = 'upload abandoned: silent longer than its progress allows; its slot is freed and its partial file removed';

  before(async () => {
    disk = tempDir('idle-disk');
    local = tempDir('idle-local');
    env = await startAgentKit({ services: { disks: { disks: { data: { path: disk } } }, transfer: { chunkBytes: 64 * 1024, stallTimeout, idleTimeout } } });
  });
  after(async () => {
    await env?.cleanup();
    fs.rmSync(disk, { recursive: true, force: true });
    fs.rmSync(local, { recursive: true, force: true });
  });

  const logged = (match: (line: Record<string, unknown>) => boolean, timeout: number) => waitFor(() => env.logs.find(match), env.logEvents, 'line', timeout);

  it('an upload that moves nothing is abandoned after stallTimeout, its partial file removed; one at 3/4 is kept longer; a slow one that moves completes', async () => {
    const agent = env.agent.bus.id;
    const file = (name: string, size: number) => {
      const local_ = path.join(local, name);
      patternFile(local_, size);
      return uploadOf(agent, local_, 'data', `idle/${name}`);
    };
    const stalled = file('stalled.bin', 256 * 1024);
    const far = file('far.bin', 256 * 1024);
    const slow = file('slow.bin', 8 * 64 * 1024);
    const put = (upload: typeof stalled, generation: number, at: number, chunkBytes: number) =>
      env.caller.request(TRANSFER_ACTIONS.putChunk, { transfer: upload.begin.transfer, generation, offset: at, data: toBase64(upload.bytes.subarray(at, at + chunkBytes)) }, { target: agent });

    // Stalled: begun, nothing sent.
    const stalledBegun = Date.now();
    await env.caller.request(TRANSFER_ACTIONS.putBegin, stalled.begin, { target: agent });
    // Far along: 3 of 4 chunks, then silence.
    const farBegin = await env.caller.request<PutBeginAnswer>(TRANSFER_ACTIONS.putBegin, far.begin, { target: agent });
    let farSilentFrom = 0; // taken before the last chunk is sent: the agent's clock starts after it
    for (let at = 0; at < 3 * farBegin.chunkBytes; at += farBegin.chunkBytes) {
      farSilentFrom = Date.now();
      await put(far, farBegin.generation, at, farBegin.chunkBytes);
    }
    // Slow: a chunk every 0.4 s, far longer than stallTimeout in all.
    const slowDone = (async () => {
      const begun = await env.caller.request<PutBeginAnswer>(TRANSFER_ACTIONS.putBegin, slow.begin, { target: agent });
      for (let at = 0; at < slow.bytes.length; at += begun.chunkBytes) {
        if (at > 0) await new Promise((resolve) => setTimeout(resolve, 400)); // the pace of a slow link: what this test is about
        await put(slow, begun.generation, at, begun.chunkBytes);
      }
      return env.caller.request(TRANSFER_ACTIONS.putEnd, { transfer: slow.begin.transfer, generation: begun.generation }, { target: agent });
    })();

    const stalledLine = await logged((line) => line.msg === ABANDONED && line.filepath === 'idle/stalled.bin', 10_000);
    assert.equal(stalledLine.silentMs, stallTimeout * 1000);
    assert.ok(Date.now() - stalledBegun >= stallTimeout * 1000);
    assert.ok(!partialsUnder(disk).includes(`idle/${uploadPartialNameOf(env.caller.id, stalled.begin.transfer)}`), 'the stalled partial file is removed');
    await assert.rejects(put(stalled, 1, 0, 1024), (error: unknown) => reasonOf(error) === 'unknown-transfer');
    // The far one is as silent, but has earned more: still open.
    assert.ok(!env.logs.some((line) => line.msg === ABANDONED && line.filepath === 'idle/far.bin'), 'the upload at 3/4 was abandoned as early as a stalled one');
    assert.deepEqual(await slowDone, { status: 'ok', disk: 'data', filepath: 'idle/slow.bin', size: slow.bytes.length, sha256: slow.begin.sha256 });
    assert.ok(!env.logs.some((line) => line.msg === ABANDONED && line.filepath === 'idle/slow.bin'), 'the slow upload was abandoned');

    const farLine = await logged((line) => line.msg === ABANDONED && line.filepath === 'idle/far.bin', 15_000);
    const earned = Math.round((stallTimeout + (idleTimeout - stallTimeout) * 0.75) * 1000);
    assert.equal(farLine.silentMs, earned);
    assert.ok(Date.now() - farSilentFrom >= earned, `abandoned after ${Date.now() - farSilentFrom} ms of silence, earned ${earned}`);
    assert.deepEqual(partialsUnder(disk), [], 'no partial file left');
  });

  it('a download that reads nothing is closed after stallTimeout and its slot freed', async () => {
    const agent = env.agent.bus.id;
    patternFile(path.join(disk, 'idle-download.bin'), 100_000);
    const begun = await env.caller.request<GetFileAnswer>(TRANSFER_ACTIONS.getBegin, { disk: 'data', filepath: 'idle-download.bin' }, { target: agent });
    const line = await logged((entry) => entry.transfer === begun.transfer && String(entry.msg).startsWith('download abandoned'), 10_000);
    assert.equal(line.silentMs, stallTimeout * 1000);
    await assert.rejects(env.caller.request(TRANSFER_ACTIONS.getChunk, { transfer: begun.transfer, offset: 0, length: 1024 }, { target: agent }), (error: unknown) => reasonOf(error) === 'unknown-transfer');
  });
});

describe('transfer - partial files nobody resumes are swept', { timeout: 60_000 }, () => {
  it('at start, partial files older than idleTimeout go; fresh ones stay for their sender, until idleTimeout later; nothing outside the disk is touched', async () => {
    const base = tempDir('sweep');
    const disk = path.join(base, 'disk');
    const outside = path.join(base, 'outside');
    fs.mkdirSync(path.join(disk, 'deep/er'), { recursive: true });
    fs.mkdirSync(outside);
    // Long enough that the agent's start, however slow the machine, comes before the fresh file is as old.
    const idleTimeout = 6;
    const aged = (file: string, content: string, secondsAgo: number) => {
      fs.writeFileSync(file, content);
      const then = new Date(Date.now() - secondsAgo * 1000);
      fs.utimesSync(file, then, then);
    };
    aged(path.join(disk, `${PARTIAL_PREFIX}old-root`), 'abandoned long ago', 3600);
    aged(path.join(disk, `deep/er/${PARTIAL_PREFIX}old-deep`), 'abandoned long ago', 3600);
    aged(path.join(disk, `deep/${PARTIAL_PREFIX}fresh`), 'its sender may come back', 0);
    aged(path.join(disk, 'deep/report.txt'), 'not a partial file', 3600);
    aged(path.join(outside, `${PARTIAL_PREFIX}not-ours`), 'outside the disk', 3600);
    fs.symlinkSync(outside, path.join(disk, 'link-out'));
    const env = await startAgentKit({ services: { disks: { disks: { data: { path: disk } } }, transfer: { idleTimeout, stallTimeout: 1 } } });
    try {
      const sweeps = () => env.logs.filter((line) => line.msg === 'stale partial files swept' && line.disk === 'data');
      const first = await waitFor(() => sweeps()[0], env.logEvents, 'line', 10_000);
      assert.equal(first.removed, 2);
      assert.deepEqual(partialsUnder(disk), [`deep/${PARTIAL_PREFIX}fresh`]);
      assert.ok(fs.existsSync(path.join(disk, 'deep/report.txt')));
      // idleTimeout later the fresh one is as old, and nobody came for it.
      const second = await waitFor(() => sweeps()[1], env.logEvents, 'line', 30_000);
      assert.equal(second.removed, 1);
      assert.deepEqual(partialsUnder(disk), []);
      assert.deepEqual(fs.readdirSync(outside), [`${PARTIAL_PREFIX}not-ours`], 'the sweep did not follow the symlink out');
    } finally {
      await env.cleanup();
      fs.rmSync(base, { recursive: true, force: true });
    }
  });
});
