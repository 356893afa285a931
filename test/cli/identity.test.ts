import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../testkit/cli.js';
import { IdentityStore, tokenFingerprint } from '../../src/security/identities.js';

describe('identities (issue 7 §1)', { timeout: 60_000 }, () => {
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
    assert.deepEqual(await store.verify('alice', token), { ok: true, name: 'alice', roles: ['client'] });
    assert.deepEqual(await store.verify('alice', Buffer.from(token)), { ok: true, name: 'alice', roles: ['client'] });
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
});
