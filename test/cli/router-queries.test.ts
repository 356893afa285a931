/**
 * Every CLI command that asks the router, as each role of the default policy, against a real
 * `relais start --config` made by `relais init` (docs/security.md "The default policy",
 * "History privacy"): clients, services and admins get their answers; an observer reads the
 * registry and metrics and, of the history, only what it is a party to.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI_SUITE_TIMEOUT, runCli, startRelais, type RelaisStart } from '../testkit/cli.js';

const ROLES = { admin: 'admin', svc: 'service', alice: 'client', olga: 'observer' } as const;
type Name = keyof typeof ROLES;

describe('router queries from the CLI under each default role (relais init, relais start --config)', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let root: string;
  let relais: RelaisStart | undefined;
  const env = new Map<Name, Record<string, string>>();
  let token = '';

  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-router-queries-'));
    const setUp = path.join(root, 'secure');
    const config = path.join(setUp, 'relais.json');
    const init = await runCli(['init', '--dir', setUp]);
    assert.equal(init.code, 0, init.stderr);
    const tokens = new Map<Name, string>([['admin', init.stdout.match(/administrator token .*:\n(relais_\S+)\n/)![1]!]]);
    for (const name of ['svc', 'alice', 'olga'] as const) {
      const added = await runCli(['identity', 'add', name, '--role', ROLES[name], '--token', '--config', config, ...(name === 'svc' ? ['--serves', 'demo/echo'] : [])]);
      assert.equal(added.code, 0, added.stderr);
      tokens.set(name, added.stdout.match(/token \(shown once.*\n(\S+)\n/)![1]!);
    }
    relais = await startRelais(['--config', config, '--tls-port', '0']);
    for (const name of Object.keys(ROLES) as Name[]) env.set(name, { RELAIS_BROKER: relais.url, RELAIS_ID: name, RELAIS_TOKEN: tokens.get(name)!, RELAIS_LOG_LEVEL: 'error' });
    await relais.serve('demo/echo', [process.execPath, '-e', 'let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => console.log(JSON.stringify({ echo: JSON.parse(s) })));'], { env: env.get('svc')! });
    const sent = await runCli(['call', 'demo/echo', '{"secret":"alice-secret"}', '--detach'], env.get('alice')!);
    assert.equal(sent.code, 0, sent.stderr);
    token = sent.stdout.trim();
  });

  after(async () => {
    if (relais) assert.equal(await relais.close(), 0, relais.cli.output());
    fs.rmSync(root, { recursive: true, force: true });
  });

  /** The history rows `name` gets for alice's request, following it to its end when it may. */
  const historyOf = async (name: Name, follow: boolean) => {
    const result = await runCli(['history', '--token', token, ...(follow ? ['--follow'] : [])], env.get(name)!);
    assert.equal(result.code, 0, `${name}: ${result.stderr}`);
    return result.stdout.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as { kind: string; source: string; data: string });
  };

  for (const name of Object.keys(ROLES) as Name[]) {
    it(`${ROLES[name]} - relais history, clients and stats answer (exit 0)`, async () => {
      for (const command of ['history', 'clients', 'stats']) {
        const result = await runCli([command], env.get(name)!);
        assert.equal(result.code, 0, `relais ${command} as ${name} (${ROLES[name]}): ${result.stderr}`);
        assert.doesNotMatch(result.stderr, /NotAuthorized|not authorised to publish/);
        if (command === 'clients') assert.match(result.stdout, /"id":"relais-router",[^\n]*"status":"alive"/);
      }
    });
  }

  for (const name of ['alice', 'svc', 'admin'] as const) {
    it(`${ROLES[name]} - follows alice's request to its final (bus.follow through relais history --follow)`, async () => {
      const rows = await historyOf(name, true);
      assert.equal(rows[0]!.kind, 'command');
      // A one-shot command with a token connects as a session of its identity (protocol §2.1).
      assert.match(rows[0]!.source, /^alice(~cli-[\w-]+)?$/);
      assert.deepEqual([rows.at(-1)!.kind, rows.at(-1)!.source], ['final', 'svc']);
    });
  }

  it("observer - reads nothing of alice's request: its role holds no history:read-all", async () => {
    assert.deepEqual(await historyOf('olga', false), []);
    const all = await runCli(['history', '--json'], env.get('olga')!);
    assert.equal(all.code, 0, all.stderr);
    assert.doesNotMatch(all.stdout, /alice-secret/);
  });
});
