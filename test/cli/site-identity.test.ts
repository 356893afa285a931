/**
 * A site's identity from the CLI (docs/security.md "Sites"): `relais identity add poller-1 --cert
 * --role site` in a set-up from `relais init`, and `relais policy check` explaining what the role
 * site of the default policy lets a link's other end do. Real `relais` processes.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI_SUITE_TIMEOUT, runCli } from '../testkit/cli.js';

describe('a site identity from the CLI', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let root: string;
  let setUp: string;
  let config: string;
  let policyFile: string;
  let init: Awaited<ReturnType<typeof runCli>>;
  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-site-cli-'));
    setUp = path.join(root, 'conf');
    init = await runCli(['init', '--dir', setUp]);
    assert.equal(init.code, 0, init.stderr);
    config = path.join(setUp, 'relais.json');
    policyFile = path.join(setUp, 'policy.yaml');
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('relais init lists the role site, and identity add poller-1 --cert --role site issues its certificate', async () => {
    assert.match(init.stdout, /relais identity add <site> --role site --cert --config/);
    assert.match(fs.readFileSync(policyFile, 'utf8'), /^ {2}site:\n {4}description: "the other end of a link/m);
    const added = await runCli(['identity', 'add', 'poller-1', '--cert', '--role', 'site', '--config', config]);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /identity poller-1 added to .* \(roles: site\)/);
    assert.ok(fs.existsSync(path.join(setUp, 'poller-1.crt')) && fs.existsSync(path.join(setUp, 'poller-1.key')));
    const identities = JSON.parse(fs.readFileSync(path.join(setUp, 'identities.json'), 'utf8')) as { identities: Array<{ name: string; roles: string[] }> };
    assert.deepEqual(identities.identities.find(({ name }) => name === 'poller-1')?.roles, ['site']);
  });

  it('policy check explains what a site may do: its link topics, commands and presences of others (with the claim check noted), not the router\'s or others\' topics', async () => {
    const check = (identity: string, operation: string, topic: string, role = 'site') => runCli(['policy', 'check', policyFile, identity, operation, topic, '--role', role]);
    const expect = async (identity: string, operation: string, topic: string, verdict: RegExp, code: number, role = 'site') => {
      const result = await check(identity, operation, topic, role);
      assert.equal(result.code, code, `${identity} ${operation} ${topic}: ${result.stdout}${result.stderr}`);
      assert.match(result.stdout, verdict);
      return result;
    };
    const presence = await expect('poller-1', 'pub', 'relais/presence/agent-p1', /^allow publish relais\/presence\/agent-p1 for poller-1: rules\[\d+\] "a link's other end carries commands/, 0);
    assert.match(presence.stderr, /note: poller-1 has the role site: the broker also checks whom it speaks for.*builtin:site-claim/);
    await expect('poller-1', 'pub', 'relais/sites/poller-1/clients', /^allow .*"a link's other end publishes its link's status/, 0);
    await expect('poller-1', 'sub', 'system/disks/list/request/+', /^allow .*"a link's other end carries the agents' actions/, 0);
    await expect('poller-1', 'pub', 'relais/history/stored', /^deny publish relais\/history\/stored for poller-1: default-deny/, 1);
    await expect('poller-1', 'pub', 'relais/sites/poller-2', /^deny .*: default-deny/, 1);
    await expect('poller-1', 'sub', '$SYS/#', /^deny .*: builtin:wildcard-subscription/, 1);
    await expect('poller-1', 'sub', 'demo/echo/response/#', /^deny .*: builtin:wildcard-subscription/, 1);
    // Every identity reads the links' statuses and rosters.
    await expect('alice', 'sub', 'relais/sites/#', /^allow subscribe relais\/sites\/# for alice: rules\[0\] "every identity/, 0, 'client');
    const client = await expect('alice', 'pub', 'relais/presence/bob', /^deny .*: builtin:others-presence/, 1, 'client');
    assert.doesNotMatch(client.stderr, /note/);
  });
});
