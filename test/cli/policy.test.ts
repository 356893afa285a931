import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLI_SUITE_TIMEOUT, runCli } from '../testkit/cli.js';
import { DEFAULT_POLICY_DATA } from '../../src/security/default-policy.js';

describe('relais policy', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let dir: string;
  let policyFile: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-policy-cli-'));
    policyFile = path.join(dir, 'policy.json');
    fs.writeFileSync(policyFile, JSON.stringify(DEFAULT_POLICY_DATA));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('policy check - allow exits 0 and names the rule', async () => {
    const result = await runCli(['policy', 'check', policyFile, 'alice', 'sub', 'demo/x/response/alice', '--role', 'client']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^allow subscribe demo\/x\/response\/alice for alice: rules\[2\] "clients call actions/);
  });

  it('policy check - deny exits 1 and names the built-in rule', async () => {
    const result = await runCli(['policy', 'check', policyFile, 'alice~rt', 'pub', 'relais/presence/bob', '--role', 'client']);
    assert.equal(result.code, 1, result.stderr);
    assert.equal(result.stdout, 'deny publish relais/presence/bob for alice~rt: builtin:others-presence\n');
  });

  it('policy check - an invalid file exits 2 naming the field', async () => {
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ ...DEFAULT_POLICY_DATA, rules: [{ publish: ['a/#/b'] }] }));
    const result = await runCli(['policy', 'check', bad, 'alice', 'pub', 'a']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /rules\[0\]\.publish\[0\]: filter "a\/#\/b": '#' must be a whole last level/);
  });

  it('policy check - usage mistakes exit 2', async () => {
    assert.equal((await runCli(['policy', 'check', policyFile, 'alice', 'write', 'a'])).code, 2);
    assert.equal((await runCli(['policy', 'check', policyFile, 'alice', 'pub'])).code, 2);
    assert.equal((await runCli(['policy', 'check', policyFile, 'alice', 'pub', 'a', '--role', 'nope'])).code, 2);
  });

  it('policy export --mosquitto - writes the ACL and the configuration fragment', async () => {
    const out = path.join(dir, 'mosquitto');
    const result = await runCli(['policy', 'export', '--mosquitto', out, '--policy', policyFile]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(fs.readFileSync(path.join(out, 'relais.acl'), 'utf8'), /^pattern write relais\/presence\/%u$/m);
    assert.match(fs.readFileSync(path.join(out, 'relais-mosquitto.conf'), 'utf8'), new RegExp(`^acl_file ${path.join(out, 'relais.acl')}$`, 'm'));
    assert.match(result.stderr, /note: role observer: no known identity/);
  });
});
