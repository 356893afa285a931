import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLI_SUITE_TIMEOUT, runCli, startCli, startRelais } from '../testkit/cli.js';
import { connect } from '../../src/index.js';
import { testLogger } from '../testkit/index.js';
import { IdentityStore, tokenFingerprint } from '../../src/security/identities.js';
import { DEFAULT_POLICY_DATA } from '../../src/security/default-policy.js';
import mqtt from 'mqtt';

describe('identities', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-identity-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('store - a token verifies; a wrong one, an unknown name and a revoked identity do not; only a hash is stored', async () => {
    const store = new IdentityStore(path.join(dir, 'store', 'identities.json'));
    const { token, fingerprint } = await store.add('alice', ['client']);
    assert.equal(fingerprint, tokenFingerprint(token));
    const text = fs.readFileSync(store.file, 'utf8');
    assert.ok(!text.includes(token), 'the token itself is not stored');
    assert.match(text, /"tokenHash": "scrypt\$/);
    assert.equal(fs.statSync(store.file).mode & 0o777, 0o600);
    const record = store.list()[0]!;
    assert.deepEqual(await store.verify('alice', token), { ok: true, name: 'alice', roles: ['client'], credential: record.tokenHash });
    assert.deepEqual(await store.verify('alice', Buffer.from(token)), { ok: true, name: 'alice', roles: ['client'], credential: record.tokenHash });
    assert.equal((await store.verify('alice', `${token}x`)).ok, false);
    assert.deepEqual(await store.verify('alice', 'nope'), { ok: false, reason: 'wrong token' });
    assert.deepEqual(await store.verify('bob', token), { ok: false, reason: 'unknown identity' });
    assert.deepEqual(await store.verify('alice', undefined), { ok: false, reason: 'no token' });
    await assert.rejects(store.add('alice'), /exists already/);
    await assert.rejects(store.add('x~rt'), /~rt/);
    await assert.rejects(store.add('a/b'), /identity name/);
    // Another store object on the same file (another process): revocation is seen at once.
    assert.equal(new IdentityStore(store.file).revoke('alice'), true);
    assert.deepEqual(await store.verify('alice', token), { ok: false, reason: 'revoked' });
    assert.equal(store.revoke('alice'), false);
  });

  it('relais identity add / list / revoke - the token is printed once with its fingerprint', async () => {
    const dataDir = path.join(dir, 'data');
    const added = await runCli(['identity', 'add', 'svc-1', '--role', 'service', 'client', '--token', '--data-dir', dataDir]);
    assert.equal(added.code, 0, added.stderr);
    const token = /^(relais_[A-Za-z0-9_-]{43})$/m.exec(added.stdout)?.[1];
    assert.ok(token, added.stdout);
    assert.match(added.stdout, new RegExp(`fingerprint: ${tokenFingerprint(token)}`));
    const store = new IdentityStore(path.join(dataDir, 'identities.json'));
    assert.equal((await store.verify('svc-1', token)).ok, true);

    const listed = await runCli(['identity', 'list', '--data-dir', dataDir, '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    const entry = JSON.parse(listed.stdout.trim()) as Record<string, unknown>;
    assert.equal(entry.name, 'svc-1');
    assert.deepEqual(entry.roles, ['service', 'client']);
    assert.equal(entry.fingerprint, tokenFingerprint(token));
    assert.ok(!listed.stdout.includes(token) && !('tokenHash' in entry));

    assert.equal((await runCli(['identity', 'add', 'svc-1', '--data-dir', dataDir])).code, 2);
    const revoked = await runCli(['identity', 'revoke', 'svc-1', '--data-dir', dataDir]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.equal((await store.verify('svc-1', token)).ok, false);
    assert.match((await runCli(['identity', 'list', '--data-dir', dataDir])).stdout, /^svc-1\troles=service,client\tfingerprint=\w{16}\tcreated=\S+\trevoked=\S+\n$/);
    assert.equal((await runCli(['identity', 'revoke', 'nobody', '--data-dir', dataDir])).code, 1);
  });

  it('relais start --secure - without identities it refuses to start and says how to make one', async () => {
    const result = await runCli(['start', '--web-port', '0', '--secure', '--port', '0', '--no-router', '--data-dir', path.join(dir, 'empty')]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /no identities in \S+identities\.json: nobody could connect; create one with: relais identity add <name> --role client --token --data-dir /);
  });

  it('relais start --secure - the router runs, a service added with --serves while it runs serves that and nothing else, a client calls it with its token, a client without one is refused', async () => {
    const dataDir = path.join(dir, 'secure');
    const store = new IdentityStore(path.join(dataDir, 'identities.json'));
    const daveToken = (await store.add('dave', ['client'])).token;
    // The broker's lines as an operator reads them on a terminal (in a pipe, pino's JSON escapes their quotes).
    const { cli: broker, url } = await startRelais(['--secure', '--data-dir', dataDir, '--log-format', 'readable']);
    try {
      await broker.waitFor(/security on: identities \S+identities\.json, policy \(the default policy until \S+policy\.json is written\)/);
      const added = await runCli(['identity', 'add', 'svc', '--role', 'service', '--serves', 'demo/#', '--data-dir', dataDir]);
      assert.equal(added.code, 0, added.stderr);
      assert.match(added.stdout, /svc serves demo\/#: written to \S+policy\.json \(made from the default policy\)/);
      const svcToken = /^(relais_\S+)$/m.exec(added.stdout)![1]!;
      await broker.waitFor(/policy \S+policy\.json reloaded \(the file changed\)/, 8000);
      const svc = await connect({ id: 'svc', broker: url, username: 'svc', password: svcToken, logger: testLogger });
      try {
        await assert.rejects(svc.handle('billing/echo', () => ({})), /Subscribe error|refused the subscription/, 'billing/echo is not what it serves');
        await svc.handle('demo/echo', (payload) => ({ echoed: payload }));
        const host = url.replace('mqtt://', '');
        const called = await runCli(['call', 'demo/echo', '{"n":2}', '--broker', `mqtt://dave:${daveToken}@${host}`, '--id', 'dave', '--timeout', '5']);
        assert.equal(called.code, 0, called.stderr);
        assert.match(called.stdout, /"echoed"/);
        const anonymous = await runCli(['call', 'demo/echo', '{}', '--broker', url, '--id', 'dave', '--timeout', '3'], { RELAIS_LOG_LEVEL: 'error' });
        assert.notEqual(anonymous.code, 0);
        await broker.waitFor(/refused CONNECT of no identity \(no username\) \(client id "dave"\)/);
        assert.ok(!broker.output().includes(daveToken) && !broker.output().includes(svcToken), 'a token in the broker output');
        assert.doesNotMatch(broker.output(), /refused CONNECT of identity "relais-router"|without authentication/);
      } finally {
        await svc.close();
      }
    } finally {
      assert.equal(await broker.stop('SIGINT'), 0, broker.output());
    }
  });

  it('relais start --policy - live: `relais identity revoke` closes a connected client, and a saved policy drops a subscription it no longer allows, each within a second', async () => {
    const dataDir = path.join(dir, 'live');
    const store = new IdentityStore(path.join(dataDir, 'identities.json'));
    const annToken = (await store.add('ann', ['client'])).token;
    const benToken = (await store.add('ben', ['client'])).token;
    const policyFile = path.join(dataDir, 'policy.json');
    fs.writeFileSync(policyFile, JSON.stringify(DEFAULT_POLICY_DATA));
    // The broker's lines as an operator reads them on a terminal (in a pipe, pino's JSON escapes their quotes).
    const { cli: broker, url } = await startRelais(['--policy', policyFile, '--no-router', '--data-dir', dataDir, '--log-format', 'readable']);
    const clients: mqtt.MqttClient[] = [];
    try {
      await broker.waitFor(/security on:/);
      const raw = async (id: string, token: string) => {
        const client = await mqtt.connectAsync(url, { clientId: id, username: id, password: token, protocolVersion: 4, reconnectPeriod: 0 });
        clients.push(client);
        return client;
      };
      const ann = await raw('ann', annToken);
      const annClosed = new Promise<number>((resolve) => ann.once('close', () => resolve(Date.now())));
      const revoked = await runCli(['identity', 'revoke', 'ann', '--data-dir', dataDir]);
      assert.equal(revoked.code, 0, revoked.stderr);
      // Counted from the file's change, not from the command's start (a CLI start takes seconds on a busy machine).
      const revokedAt = fs.statSync(path.join(dataDir, 'identities.json')).mtimeMs;
      const closedAt = await Promise.race([annClosed, new Promise<number>((_, reject) => setTimeout(() => reject(new Error(`ann still connected; output:\n${broker.output()}`)), 10_000))]);
      assert.ok(closedAt - revokedAt < 5000, `closed ${Math.round(closedAt - revokedAt)} ms after the identities file changed`);
      await broker.waitFor(/disconnected identity ann: revoked/);
      // ben reads notifications; a saved policy takes that away from clients.
      const ben = await raw('ben', benToken);
      await ben.subscribeAsync('demo/n/notification', { qos: 1 });
      const told = new Promise<string>((resolve) => ben.on('message', (topic, payload) => topic === 'relais/broker/notice/ben/notification' && resolve(payload.toString())));
      const rules = DEFAULT_POLICY_DATA.rules.map((rule) => ('roles' in rule && rule.roles ? { ...rule, roles: (rule.roles as string[]).filter((role) => role !== 'client') } : rule));
      fs.writeFileSync(policyFile, JSON.stringify({ ...DEFAULT_POLICY_DATA, rules }));
      const notice = JSON.parse(await Promise.race([told, new Promise<string>((_, reject) => setTimeout(() => reject(new Error(`no notice; output:\n${broker.output()}`)), 5000))])) as { payload: unknown };
      assert.deepEqual(notice.payload, { notice: 'subscriptions-dropped', dropped: [{ filter: 'demo/n/notification', rule: 'default-deny' }] });
      await broker.waitFor(/dropped the subscription to "demo\/n\/notification" of identity ben: default-deny/);
    } finally {
      await Promise.all(clients.map((client) => client.endAsync(true)));
      assert.equal(await broker.stop('SIGINT'), 0, broker.output());
    }
  });

  it('relais start --policy - a changed file is reloaded; an invalid one is refused and the old policy kept', async () => {
    const dataDir = path.join(dir, 'reload');
    const store = new IdentityStore(path.join(dataDir, 'identities.json'));
    await store.add('ann', ['client']);
    const policyFile = path.join(dataDir, 'my-policy.json');
    fs.writeFileSync(policyFile, JSON.stringify(DEFAULT_POLICY_DATA));
    const broker = startCli(['start', '--web-port', '0', '--policy', policyFile, '--port', '0', '--no-router', '--data-dir', dataDir]);
    try {
      await broker.waitFor(new RegExp(`security on: identities \\S+identities\\.json, policy ${policyFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      fs.writeFileSync(policyFile, JSON.stringify({ ...DEFAULT_POLICY_DATA, rules: [{ publish: ['a/#/b'] }] }));
      await broker.waitFor(/the new policy is refused, the previous one stays in force: .*rules\[0\]\.publish\[0\]/, 8000);
      fs.writeFileSync(policyFile, JSON.stringify({ ...DEFAULT_POLICY_DATA, rules: DEFAULT_POLICY_DATA.rules.slice(0, 2) }));
      await broker.waitFor(/policy \S+my-policy\.json reloaded/, 8000);
    } finally {
      assert.equal(await broker.stop('SIGINT'), 0, broker.output());
    }
    const invalid = await runCli(['start', '--web-port', '0', '--policy', path.join(dataDir, 'missing.json'), '--port', '0', '--no-router', '--data-dir', dataDir]);
    assert.equal(invalid.code, 2);
    assert.match(invalid.stderr, /invalid policy: \S+missing\.json: cannot read it/);
  });
});
