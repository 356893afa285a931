/**
 * The key-value store with security on (protocol §14.8, docs/security.md "Key-value store"):
 * each role of the default policy, over a real embedded broker enforcing it and the router
 * deciding the kv rules; then the policy file tightened under a running watch and open
 * connections.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, NotAuthorizedError, type Bus } from '../../src/index.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import { KeyNotFoundError, KV_ACTIONS, type KvBuckets } from '../../src/protocol/kv.js';
import { startRouter, type Router } from '../../src/router/index.js';
import { DEFAULT_POLICY_DATA } from '../../src/security/default-policy.js';
import { IdentityStore } from '../../src/security/identities.js';
import { loadPolicy } from '../../src/security/policy-file.js';
import { testLogger, within } from '../testkit/index.js';
import { take } from './kv-contract.js';

const ROLES = { alice: 'client', bob: 'client', svc: 'service', root: 'admin', olga: 'observer' } as const;
type Name = keyof typeof ROLES;

const refused = (error: unknown) => error instanceof NotAuthorizedError && error.responseCode === 4;

describe('key-value store with security on: the default policy, role by role', { timeout: 120_000 }, () => {
  let dir: string;
  let policyFile: string;
  let broker: EmbeddedBroker;
  let router: Router;
  const buses = new Map<Name, Bus>();
  const bus = (name: Name) => buses.get(name)!;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-kv-policy-'));
    const store = new IdentityStore(path.join(dir, 'identities.json'));
    const tokens = new Map<string, string>();
    for (const [name, role] of Object.entries(ROLES)) tokens.set(name, (await store.add(name, [role])).token);
    policyFile = path.join(dir, 'policy.json');
    fs.writeFileSync(policyFile, JSON.stringify(DEFAULT_POLICY_DATA));
    broker = await startEmbeddedBroker({ port: 0, security: { identities: store, policy: loadPolicy(policyFile) }, log: () => {} });
    router = await startRouter({ stream: () => broker.connectInProcess(), database: path.join(dir, 'history.db'), logger: testLogger, access: { identities: store.file, policy: policyFile } });
    for (const name of Object.keys(ROLES) as Name[]) {
      buses.set(name, await connect({ id: name, broker: broker.url!, username: name, password: tokens.get(name)!, realtimeLane: false, logger: testLogger }));
    }
    for (const name of Object.keys(ROLES) as Name[]) await bus(name).waitForHandler(KV_ACTIONS.get);
  });

  after(async () => {
    await Promise.all([...buses.values()].map((each) => each.close()));
    await router?.close();
    await broker?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("admin - writes shared buckets and any client's configuration, and reads them", async () => {
    await bus('root').kv('settings').put('site/name', 'home');
    await bus('root').kv('config').put('bob', { level: 3 });
    assert.equal((await bus('root').kv('config').get('bob')).value !== undefined, true);
    assert.deepEqual((await bus('root').kv('config').keys()).keys.includes('bob'), true);
  });

  it('client - reads shared buckets but may not write them (code 4); reads and writes its own configuration, not another\'s', async () => {
    const alice = bus('alice');
    assert.equal((await alice.kv('settings').get('site/name')).value, 'home');
    await assert.rejects(alice.kv('settings').put('site/name', 'mine'), refused);
    await assert.rejects(alice.kv('settings').delete('site/name'), refused);
    await alice.kv('config').put('alice', { level: 1 });
    assert.deepEqual((await alice.kv('config').get('alice')).value, { level: 1 });
    await assert.rejects(alice.kv('config').get('bob'), refused);
    await assert.rejects(alice.kv('config').put('bob', { level: 9 }), refused);
    await assert.rejects(alice.kv('config').history('bob'), refused);
    // Listing the config bucket shows its own key only.
    assert.deepEqual((await alice.kv('config').keys()).keys, ['alice']);
    assert.equal((await bus('root').kv('config').get('bob')).value !== undefined, true, "bob's configuration is untouched");
  });

  it('client - a watch of the config bucket sees its own key only; of a key range it may not read, is refused', async () => {
    const controller = new AbortController();
    const watch = bus('alice').kv('config').watch({ since: 0, signal: controller.signal });
    const items = await take(watch, 2);
    assert.deepEqual(items.map((item) => ('key' in item ? item.key : 'up-to-date')), ['alice', 'up-to-date']);
    controller.abort();
    const other = bus('alice').kv('config').watch({ prefix: 'bob' });
    await assert.rejects(other.next(), refused);
  });

  it('service - like a client: its own configuration and schema, shared buckets read-only', async () => {
    const svc = bus('svc');
    await svc.kv('config').put('svc', { workers: 2 });
    await svc.kv('config-schema').put('svc', { schema: { type: 'object' }, hash: '0123456789abcdef' });
    await assert.rejects(svc.kv('config-schema').put('alice', { schema: { type: 'object' }, hash: 'x' }), refused);
    await assert.rejects(svc.kv('settings').put('k', 1), refused);
    assert.equal((await svc.kv('settings').get('site/name')).value, 'home');
  });

  it('observer - reads shared buckets; writes nothing, not even a configuration of its own; reads no configuration', async () => {
    const olga = bus('olga');
    assert.equal((await olga.kv('settings').get('site/name')).value, 'home');
    await assert.rejects(olga.kv('settings').put('k', 1), refused);
    await assert.rejects(olga.kv('config').put('olga', {}), refused);
    await assert.rejects(olga.kv('config').get('alice'), refused);
    const buckets = (await olga.request(KV_ACTIONS.buckets, {})) as KvBuckets;
    assert.equal(buckets.buckets.some((b) => b.name === 'config'), false, 'the config bucket is not even listed to it');
    assert.equal(buckets.buckets.some((b) => b.name === 'settings'), true);
  });

  it('policy tightened on a running bus: an open watch ends with code 4 and the next request on the same connection is refused', async () => {
    const alice = bus('alice');
    const controller = new AbortController();
    const watch = alice.kv('settings').watch({ signal: controller.signal });
    await take(watch, 2); // site/name, then up-to-date
    // The operator removes the clients' read of shared buckets.
    const tightened = { ...DEFAULT_POLICY_DATA, kv: DEFAULT_POLICY_DATA.kv.map((rule) => (rule.read.includes('*') && !rule.roles.includes('admin') ? { ...rule, roles: ['observer'] } : rule)) };
    fs.writeFileSync(policyFile, JSON.stringify(tightened));
    await bus('root').kv('settings').put('site/name', 'changed');
    await within(
      (async () => {
        await assert.rejects(
          (async () => {
            for (;;) {
              const next = await watch.next();
              if (next.done) throw new Error('the watch ended without an error');
            }
          })(),
          refused,
        );
      })(),
      15_000,
      'the watch to end refused',
    );
    await assert.rejects(alice.kv('settings').get('site/name'), refused);
    assert.equal((await bus('olga').kv('settings').get('site/name')).value, 'changed', 'observers still read');
    await assert.rejects(bus('alice').kv('settings').get('nothing'), (error: unknown) => refused(error) && !(error instanceof KeyNotFoundError));
    controller.abort();
  });
});
