/**
 * The Authenticator (src/security/authenticator.ts, docs/security.md "Failed authentications")
 * and the identities index it reads (src/security/identities.ts), on a real identities file,
 * with a clock of the test's own: back-off per address and per identity, proved tokens
 * remembered under the record's current state, checks served address by address.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Authenticator, type Authentication } from '../../src/security/authenticator.js';
import { IdentityStore } from '../../src/security/identities.js';

describe('authenticator', { timeout: 60_000 }, () => {
  let dir: string;
  let store: IdentityStore;
  const tokens = new Map<string, string>();
  let clock = 1_000_000;
  const now = () => clock;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-authenticator-'));
    store = new IdentityStore(path.join(dir, 'identities.json'), { log: () => {} });
    for (const name of ['alice', 'bob', 'carol', 'dave']) tokens.set(name, (await store.add(name, ['client'])).token);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const reason = (result: Authentication) => (result.ok ? 'ok' : result.reason);

  it('back-off per identity - after the free failures, attempts are refused at once without a check, for a wait that doubles; then checked again', async () => {
    const doors = new Authenticator(store, { identityFailures: 3, addressFailures: 1000, backoffMs: 1000 }, now);
    for (let i = 0; i < 3; i++) assert.equal(reason(await doors.verifyToken('alice', `wrong-${i}`, `10.0.0.${i}`)), 'wrong token');
    // The fourth failure starts a back-off of 1 s.
    assert.equal(reason(await doors.verifyToken('alice', 'wrong-3', '10.0.0.9')), 'wrong token');
    const throttled = await doors.verifyToken('alice', tokens.get('bob')!, '10.0.0.10');
    assert.deepEqual(throttled, { ok: false, reason: 'too many failures', detail: 'identity "alice"', retryAfterMs: 1000 });
    // Even the right token waits (it was never proved here): a guess and the owner look the same.
    assert.equal(reason(await doors.verifyToken('alice', tokens.get('alice')!, '10.0.0.11')), 'too many failures');
    clock += 1001;
    assert.equal(reason(await doors.verifyToken('alice', 'wrong-4', '10.0.0.12')), 'wrong token');
    const doubled = await doors.verifyToken('alice', 'wrong-5', '10.0.0.13');
    assert.equal(reason(doubled), 'too many failures');
    assert.equal((doubled as { retryAfterMs: number }).retryAfterMs, 2000, 'the wait doubled');
    // Another identity is not concerned; the right token after the wait resets the count.
    assert.equal(reason(await doors.verifyToken('bob', tokens.get('bob')!, '10.0.0.14')), 'ok');
    clock += 2001;
    assert.equal(reason(await doors.verifyToken('alice', tokens.get('alice')!, '10.0.0.15')), 'ok');
    assert.equal(reason(await doors.verifyToken('alice', 'wrong-6', '10.0.0.16')), 'wrong token', 'counted from zero again');
  });

  it('back-off per address - guesses at many names from one address stop being checked; other addresses are not concerned', async () => {
    const doors = new Authenticator(store, { identityFailures: 1000, addressFailures: 5, backoffMs: 5000 }, now);
    for (let i = 0; i < 6; i++) assert.equal(reason(await doors.verifyToken(`nobody-${i}`, 'x', '10.1.1.1')), 'unknown identity');
    const throttled = await doors.verifyToken('carol', tokens.get('carol')!, '10.1.1.1');
    assert.deepEqual(throttled, { ok: false, reason: 'too many failures', detail: 'address 10.1.1.1', retryAfterMs: 5000 });
    assert.equal(reason(await doors.verifyToken('carol', tokens.get('carol')!, '10.1.1.2')), 'ok');
    // Failures are forgotten after a quiet while.
    clock += 600_001;
    assert.equal(reason(await doors.verifyToken('nobody-7', 'x', '10.1.1.1')), 'unknown identity');
  });

  it('proved tokens - remembered: no back-off applies to them; revocation and new credentials apply at once', async () => {
    const doors = new Authenticator(store, { identityFailures: 1, addressFailures: 1000, backoffMs: 60_000 }, now);
    assert.equal(reason(await doors.verifyToken('dave', tokens.get('dave')!, '10.2.0.1')), 'ok');
    // Someone hammers dave's name: a back-off for dave's name...
    assert.equal(reason(await doors.verifyToken('dave', 'guess-1', '10.9.9.9')), 'wrong token');
    assert.equal(reason(await doors.verifyToken('dave', 'guess-2', '10.9.9.9')), 'wrong token');
    assert.equal(reason(await doors.verifyToken('dave', 'guess-3', '10.9.9.9')), 'too many failures');
    // ...but dave's own, proved token still gets in, without a check.
    const started = performance.now();
    assert.equal(reason(await doors.verifyToken('dave', tokens.get('dave')!, '10.2.0.1')), 'ok');
    assert.ok(performance.now() - started < 20, 'answered from memory');
    // Revoked: refused at once, with the reason, still without a check.
    new IdentityStore(store.file).revoke('dave');
    assert.equal(reason(await doors.verifyToken('dave', tokens.get('dave')!, '10.2.0.1')), 'revoked');
    // Issued new credentials: the new token works once the back-off is over; the old one proves nothing any more.
    const fresh = (await new IdentityStore(store.file).add('dave', ['client'])).token;
    assert.equal(reason(await doors.verifyToken('dave', tokens.get('dave')!, '10.3.0.1')), 'too many failures', 'not remembered: the back-off applies');
    clock += 60_001;
    assert.equal(reason(await doors.verifyToken('dave', fresh, '10.3.0.2')), 'ok');
    assert.equal(reason(await doors.verifyToken('dave', tokens.get('dave')!, '10.3.0.1')), 'wrong token');
    tokens.set('dave', fresh);
  });

  it('checks at once - at most `concurrentChecks` run; the others are served one address after another; an address with too many waiting is refused at once', async () => {
    const doors = new Authenticator(store, { concurrentChecks: 1, waitingPerAddress: 3, identityFailures: 1000, addressFailures: 1000 }, now);
    const order: string[] = [];
    const attempt = (name: string, token: string, address: string) => doors.verifyToken(name, token, address).then((result) => (order.push(`${address} ${reason(result)}`), result));
    const flood = [0, 1, 2, 3, 4].map((i) => attempt('bob', `wrong-${i}`, '10.4.0.1'));
    const honest = attempt('carol', tokens.get('carol')!, '10.4.0.2');
    const results = await Promise.all([...flood, honest]);
    // One runs, three wait, the fifth is refused at once.
    assert.equal(reason(results[4]!), 'too many attempts at once');
    // The honest address's check comes right after the one running, not after the three waiting.
    assert.equal(order[0], '10.4.0.1 too many attempts at once');
    assert.equal(order[1], '10.4.0.1 wrong token');
    assert.equal(order[2], '10.4.0.2 ok');
  });
});

describe('identities index', { timeout: 30_000 }, () => {
  it('read once and again when the file changes; a broken file keeps the identities in force, logged once; standing() follows revocation and roles', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-identities-index-'));
    try {
      const logs: string[] = [];
      const store = new IdentityStore(path.join(dir, 'identities.json'), { log: (line) => logs.push(line) });
      const token = (await store.add('erin', ['client'])).token;
      const proved = await store.verify('erin', token);
      assert.ok(proved.ok);
      assert.deepEqual(store.standing('erin', proved.credential), { ok: true, roles: ['client'] });
      let changes = 0;
      const stop = store.onChange(() => changes++);
      try {
        // Roles edited in the file: the standing says so.
        const data = JSON.parse(fs.readFileSync(store.file, 'utf8')) as { identities: Array<{ roles: string[] }> };
        data.identities[0]!.roles = ['observer'];
        fs.writeFileSync(store.file, JSON.stringify(data));
        assert.deepEqual(store.standing('erin', proved.credential), { ok: true, roles: ['observer'] });
        // Broken: the last identities stay, one log line.
        fs.writeFileSync(store.file, '{ not json');
        assert.deepEqual(store.standing('erin', proved.credential), { ok: true, roles: ['observer'] });
        assert.ok((await store.verify('erin', token)).ok);
        assert.equal(logs.length, 1);
        assert.match(logs[0]!, /the identities file changed and is refused; the identities read before stay in force: .*not valid JSON/);
        // Fixed, then revoked.
        fs.writeFileSync(store.file, JSON.stringify(data));
        new IdentityStore(store.file).revoke('erin');
        assert.deepEqual(store.standing('erin', proved.credential), { ok: false, reason: 'revoked' });
        await new Promise((resolve) => setImmediate(resolve));
        assert.ok(changes >= 2, `${changes} changes told`);
      } finally {
        stop();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
