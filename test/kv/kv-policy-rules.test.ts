/**
 * The policy's kv rules as pure decisions (src/security/kv-policy.ts, docs/security.md
 * "Key-value store"): patterns, ${id}, the `*` bucket that leaves `config` out, ranges for
 * lists and watches, and a policy file whose kv rule is wrong refused naming the field.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { defaultPolicy, DEFAULT_POLICY_DATA } from '../../src/security/default-policy.js';
import { kvAllows, kvReadRange } from '../../src/security/kv-policy.js';
import { parsePolicy, PolicyError } from '../../src/security/policy.js';

const policy = parsePolicy({
  ...DEFAULT_POLICY_DATA,
  kv: [
    ...DEFAULT_POLICY_DATA.kv,
    { name: 'heating keeps its readings', identities: ['heating'], read: ['rooms/temperature/*'], write: ['rooms/temperature/*'] },
    { name: 'writers write, not read', identities: ['drop'], write: ['inbox'] },
  ],
});

it('kv rules - a prefix pattern covers the keys that begin with it, and no other', () => {
  const heating = { identity: 'heating', roles: [] };
  assert.equal(kvAllows(policy, heating, 'write', 'rooms', 'temperature/kitchen'), true);
  assert.equal(kvAllows(policy, heating, 'write', 'rooms', 'humidity/kitchen'), false);
  assert.equal(kvAllows(policy, heating, 'write', 'other', 'temperature/kitchen'), false);
  assert.equal(kvReadRange(policy, heating, 'rooms', 'temperature/'), 'all');
  assert.equal(kvReadRange(policy, heating, 'rooms', ''), 'some');
  assert.equal(kvReadRange(policy, heating, 'rooms', 'humidity/'), 'none');
});

it("kv rules - ${id} is the asker's own key, exactly: a longer id that begins with it is another key", () => {
  const alice = { identity: 'alice', roles: ['client'] };
  assert.equal(kvAllows(policy, alice, 'write', 'config', 'alice'), true);
  assert.equal(kvAllows(policy, alice, 'write', 'config', 'alice2'), false);
  assert.equal(kvAllows(policy, alice, 'read', 'config', 'bob'), false);
  assert.equal(kvAllows(policy, { identity: 'alice~rt', roles: ['client'] }, 'write', 'config', 'alice'), true, 'the real-time lane is the same identity');
  assert.equal(kvReadRange(policy, alice, 'config', ''), 'some');
  assert.equal(kvReadRange(policy, alice, 'config', 'b'), 'none');
});

it('kv rules - the bucket * is every bucket but config; admin names config to reach it', () => {
  const olga = { identity: 'olga', roles: ['observer'] };
  assert.equal(kvAllows(policy, olga, 'read', 'settings', 'x'), true);
  assert.equal(kvAllows(policy, olga, 'read', 'config-schema', 'alice'), true);
  assert.equal(kvAllows(policy, olga, 'read', 'config', 'alice'), false);
  assert.equal(kvAllows(policy, olga, 'write', 'settings', 'x'), false);
  const root = { identity: 'root', roles: ['admin'] };
  assert.equal(kvAllows(policy, root, 'write', 'config', 'alice'), true);
  assert.equal(kvReadRange(policy, root, 'config', ''), 'all');
});

it('kv rules - write does not imply read; no identity, no rule', () => {
  assert.equal(kvAllows(policy, { identity: 'drop', roles: [] }, 'write', 'inbox', 'any'), true);
  assert.equal(kvAllows(policy, { identity: 'drop', roles: [] }, 'read', 'inbox', 'any'), false);
  assert.equal(kvAllows(policy, { roles: ['admin'] }, 'read', 'settings', 'x'), false);
  assert.equal(kvAllows(defaultPolicy(), { identity: 'router-less', roles: ['router'] }, 'read', 'settings', 'x'), false);
});

it('kv rules - a policy file with a bad kv pattern or an unknown role is refused, naming the field', () => {
  assert.throws(() => parsePolicy({ ...DEFAULT_POLICY_DATA, kv: [{ roles: ['client'], read: ['bad bucket/x'] }] }), (error: unknown) => error instanceof PolicyError && /kv\[0\]\.read\[0\]/.test((error as Error).message));
  assert.throws(() => parsePolicy({ ...DEFAULT_POLICY_DATA, kv: [{ roles: ['client'], read: ['b/a*b*'] }] }), /kv\[0\]\.read\[0\]/);
  assert.throws(() => parsePolicy({ ...DEFAULT_POLICY_DATA, kv: [{ roles: ['nobody'], read: ['b'] }] }), /kv\[0\]\.roles\[0\]: unknown role/);
  assert.throws(() => parsePolicy({ ...DEFAULT_POLICY_DATA, kv: [{ roles: ['client'] }] }), /kv\[0\]: a kv rule needs/);
  // A policy written before the key-value store (no kv section) loads, granting none.
  const { kv: _none, ...older } = DEFAULT_POLICY_DATA;
  assert.deepEqual(parsePolicy(older).kv, []);
});
