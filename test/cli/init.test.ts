/**
 * `relais init` and `relais start --config` (docs/security.md "A secure set-up in one command", "Listeners"): a secure set-up in one command,
 * certificates issued and revoked without a restart, and nothing exposed beyond loopback
 * without TLS and authentication unless --insecure.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_POLICY_DATA, defaultPolicy } from '../../src/security/default-policy.js';
import { loadPolicy } from '../../src/security/policy-file.js';
import { CLI_SUITE_TIMEOUT, runCli, startCli } from '../testkit/cli.js';

describe('relais init and relais start --config', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let root: string;
  let setUp: string;
  let config: string;
  let adminToken: string;
  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-init-'));
    setUp = path.join(root, 'secure');
    config = path.join(setUp, 'relais.json');
    const result = await runCli(['init', '--dir', setUp]);
    assert.equal(result.code, 0, result.stderr);
    adminToken = result.stdout.match(/administrator token .*:\n(relais_\S+)\n/)![1]!;
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('init - writes the CA, the broker and admin certificates, identities, policy and config; keys and the directory are private', async () => {
    assert.equal(fs.statSync(setUp).mode & 0o777, 0o700);
    for (const key of ['ca.key', 'broker.key', 'admin.key', 'identities.json']) assert.equal(fs.statSync(path.join(setUp, key)).mode & 0o777, 0o600, key);
    const identities = fs.readFileSync(path.join(setUp, 'identities.json'), 'utf8');
    assert.ok(!identities.includes(adminToken), 'the admin token is stored only as a hash');
    assert.match(identities, /"certificate": \{\s+"fingerprint": "([0-9A-F]{2}:){31}[0-9A-F]{2}"/);
    const again = await runCli(['init', '--dir', setUp]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /holds a set-up already \(relais\.json, ca\.crt, ca\.key/);
  });

  it('start --config - TLS on the network, identities by certificate and token; a certificate issued later works and its revocation applies without a restart', async () => {
    // The broker's lines as an operator reads them on a terminal (in a pipe, pino's JSON escapes their quotes).
    const broker = startCli(['start', '--web-port', '0', '--config', config, '--port', '0', '--tls-port', '0', '--log-format', 'readable']);
    try {
      const [, port] = await broker.waitFor(/mqtts:\/\/0\.0\.0\.0:(\d+)/);
      const [, webPort] = await broker.waitFor(/web page and HTTP API on https:\/\/0\.0\.0\.0:(\d+)\//);
      await broker.waitFor(/router recording/);
      // The dashboard's HTTPS: the admin's certificate is an identity there too; no credentials, 401.
      const get = (files?: { cert: string; key: string }) =>
        new Promise<number>((resolve, reject) => {
          const request = https.get({ host: 'localhost', port: Number(webPort), path: '/api/clients', ca: fs.readFileSync(path.join(setUp, 'ca.crt')), ...(files && { cert: fs.readFileSync(files.cert), key: fs.readFileSync(files.key) }) }, (response) => {
            response.resume();
            resolve(response.statusCode!);
          });
          request.on('error', reject);
        });
      assert.equal(await get({ cert: path.join(setUp, 'admin.crt'), key: path.join(setUp, 'admin.key') }), 200);
      assert.equal(await get(), 401);
      const url = `mqtts://localhost:${port}`;
      const tlsFlags = (name: string) => ['--broker', url, '--ca', path.join(setUp, 'ca.crt'), '--cert', path.join(setUp, `${name}.crt`), '--key', path.join(setUp, `${name}.key`), '--id', name];
      const byCertificate = await runCli(['clients', ...tlsFlags('admin')]);
      assert.equal(byCertificate.code, 0, byCertificate.stderr);
      assert.match(byCertificate.stdout, /"id":"relais-router",[^\n]*"status":"alive"/);
      const byToken = await runCli(['clients', '--broker', url, '--ca', path.join(setUp, 'ca.crt'), '--id', 'admin'], { RELAIS_TOKEN: adminToken });
      assert.equal(byToken.code, 0, byToken.stderr);

      const added = await runCli(['identity', 'add', 'alice', '--role', 'admin', '--cert', '--config', config]);
      assert.equal(added.code, 0, added.stderr);
      assert.match(added.stdout, /certificate fingerprint: ([0-9A-F]{2}:){31}[0-9A-F]{2}/);
      assert.doesNotMatch(added.stdout, /token/, 'a certificate alone unless --token');
      assert.equal(fs.statSync(path.join(setUp, 'alice.key')).mode & 0o777, 0o600);
      assert.equal((await runCli(['clients', ...tlsFlags('alice')])).code, 0);
      assert.equal((await runCli(['identity', 'revoke', 'alice', '--config', config])).code, 0);
      const refused = await runCli(['clients', ...tlsFlags('alice')], { RELAIS_LOG_LEVEL: 'error' });
      assert.notEqual(refused.code, 0);
      await broker.waitFor(/refused CONNECT of certificate identity "alice" \(client id "alice~cli-[^"]+"\): revoked/);
      assert.ok(!broker.output().includes(adminToken), 'the token in the broker output');
    } finally {
      assert.equal(await broker.stop('SIGINT'), 0, broker.output());
    }
  });

  it('init - the policy is the default one in YAML, with comments that say how to grant serving and the agents\' actions; identity add --serves writes its entry and keeps them', async () => {
    const policyFile = path.join(setUp, 'policy.yaml');
    const text = fs.readFileSync(policyFile, 'utf8');
    assert.deepEqual(loadPolicy(policyFile), defaultPolicy());
    assert.match(text, /^# .*relais identity add billing --role service --serves 'billing\/#' writes the entry here\.$/m);
    assert.match(text, /^# .*The agents' actions read and remove files and run commands: grant them to a$/m);
    const check = (...args: string[]) => runCli(['policy', 'check', policyFile, ...args]);
    const clientRuns = await check('alice', 'pub', 'system/command/run/request/vm-1', '--role', 'client');
    assert.equal(clientRuns.code, 1, clientRuns.stdout);
    assert.match(clientRuns.stdout, /^deny publish system\/command\/run\/request\/vm-1 for alice: builtin:restricted-actions$/m);

    const added = await runCli(['identity', 'add', 'billing', '--role', 'service', '--serves', 'billing/#', '--config', config]);
    assert.equal(added.code, 0, added.stderr);
    const after = fs.readFileSync(policyFile, 'utf8');
    assert.ok(after.startsWith(text.split('\nidentities:')[0]!), 'the comments and what precedes the identities are kept');
    assert.match(after, /^ {2}billing:\n {4}serves: \[billing\/#\]$/m);
    assert.equal((await check('billing', 'sub', 'billing/invoice/request', '--role', 'service')).code, 0);
    assert.equal((await check('billing', 'sub', 'shop/order/request', '--role', 'service')).code, 1);
    const refused = await runCli(['identity', 'add', 'shop', '--role', 'service', '--serves', 'shop/request', '--config', config]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--serves shop\/request: action pattern "shop\/request": .*reserved segment 'request'/);
    assert.doesNotMatch(fs.readFileSync(path.join(setUp, 'identities.json'), 'utf8'), /"shop"/, 'nothing added when --serves is refused');
  });

  it('start --config - SIGHUP reloads the policy; a broken one is refused and the old one kept', async () => {
    const policyFile = path.join(setUp, 'policy.yaml');
    const good = fs.readFileSync(policyFile, 'utf8');
    const broker = startCli(['start', '--web-port', '0', '--config', config, '--port', '0', '--tls-port', '0', '--no-router']);
    try {
      await broker.waitFor(/SIGHUP reloads the policy/);
      broker.child.kill('SIGHUP');
      await broker.waitFor(/policy \S+policy\.yaml reloaded \(SIGHUP\)/);
      // Written with its old mtime kept, so only the signal can make the broker read it.
      const { atime, mtime } = fs.statSync(policyFile);
      fs.writeFileSync(policyFile, JSON.stringify({ ...DEFAULT_POLICY_DATA, rules: [{ publish: ['a/#/b'] }] }));
      fs.utimesSync(policyFile, atime, mtime);
      broker.child.kill('SIGHUP');
      await broker.waitFor(/the new policy is refused, the previous one stays in force: .*rules\[0\]\.publish\[0\]/);
    } finally {
      fs.writeFileSync(policyFile, good);
      assert.equal(await broker.stop('SIGINT'), 0, broker.output());
    }
  });

  it('start - a plain listener beyond loopback is refused with how to secure it; --insecure starts with a warning', async () => {
    const dataDir = path.join(root, 'exposed');
    const refused = await runCli(['start', '--web-port', '0', '--host', '0.0.0.0', '--port', '0', '--no-router', '--data-dir', dataDir]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /refusing to listen on 0\.0\.0\.0:0 \(plain TCP, no TLS\)/);
    assert.match(refused.stderr, /relais init --dir <dir>, then relais start --config <dir>\/relais\.json/);
    assert.match(refused.stderr, /--insecure/);
    const insecure = startCli(['start', '--web-port', '0', '--host', '0.0.0.0', '--port', '0', '--no-router', '--insecure', '--data-dir', dataDir]);
    try {
      await insecure.waitFor(/listening on mqtt:\/\/0\.0\.0\.0:\d+/);
      await insecure.waitFor(/warning: --insecure/);
    } finally {
      assert.equal(await insecure.stop('SIGINT'), 0, insecure.output());
    }
  });
});
