/**
 * Every CLI command a user runs daily, as each role of the default policy, against a real
 * secure `relais start --config` from `relais init` (docs/security.md "The default policy",
 * the table "What each role may run"). Every command is a real `relais` process with the
 * credentials from the environment (RELAIS_BROKER, RELAIS_ID, RELAIS_TOKEN); the agent is a
 * real `relais agent` with its token, then with its certificate; the router alone takes a token
 * too. A cell is "allowed" when the command did its work (an answer, a delivered message), and
 * "denied" only when the broker refused it for the policy (a code-4 answer, a refused
 * subscription, a message dropped): anything else fails the cell with the command's output.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, type Bus } from '../../src/index.js';
import { CLI_SUITE_TIMEOUT, runCli, startCli, startRelais, type CliResult, type RunningCli } from '../testkit/cli.js';
import { testLogger, waitFor, within } from '../testkit/index.js';

type Role = 'admin' | 'service' | 'client' | 'observer';
type Verdict = 'allowed' | 'denied';
const ROLES: readonly Role[] = ['admin', 'service', 'client', 'observer'];

/** What each role may run: the table of docs/security.md ("What each role may run"). */
const EXPECTED: Record<string, Record<Role, Verdict>> = {
  call: { admin: 'allowed', service: 'allowed', client: 'allowed', observer: 'denied' },
  serve: { admin: 'denied', service: 'allowed', client: 'denied', observer: 'denied' },
  pub: { admin: 'allowed', service: 'allowed', client: 'allowed', observer: 'denied' },
  notify: { admin: 'allowed', service: 'allowed', client: 'allowed', observer: 'denied' },
  sub: { admin: 'allowed', service: 'allowed', client: 'allowed', observer: 'allowed' },
  history: { admin: 'allowed', service: 'allowed', client: 'allowed', observer: 'allowed' },
  clients: { admin: 'allowed', service: 'allowed', client: 'allowed', observer: 'allowed' },
  stats: { admin: 'allowed', service: 'allowed', client: 'allowed', observer: 'allowed' },
  events: { admin: 'allowed', service: 'allowed', client: 'allowed', observer: 'allowed' },
  logs: { admin: 'allowed', service: 'allowed', client: 'allowed', observer: 'denied' },
  // The policy lets clients and services ask for a kill; the router then kills only their own requests (protocol §11.5).
  kill: { admin: 'allowed', service: 'allowed', client: 'allowed', observer: 'denied' },
  exec: { admin: 'allowed', service: 'denied', client: 'denied', observer: 'denied' },
  contracts: { admin: 'allowed', service: 'allowed', client: 'allowed', observer: 'allowed' },
};

/** The identity each role runs as; the others are the helpers' (relais identity add in before()). */
const IDENTITY: Record<Role, string> = { admin: 'admin', service: 'svc', client: 'alice', observer: 'eve' };
const ADDED: [name: string, args: string[]][] = [
  ['svc', ['--role', 'service', '--serves', 'demo/#']],
  ['alice', ['--role', 'client']],
  ['eve', ['--role', 'observer']],
  ['echo', ['--role', 'service', '--serves', 'demo/echo']],
  ['vm-1', ['--role', 'service', '--serves', 'system/#', '--cert', '--token']],
  ['ops', ['--role', 'client', 'agent-user']],
  ['witness', ['--role', 'admin']],
  ['spare-router', ['--role', 'router']],
];
/** Refusals for the policy, as the commands print them: the broker's code-4 answer, or a refused subscription. */
const REFUSED = /not authori[sz]ed to publish|Subscribe error|refused the subscription/;

interface Cell {
  verdict: Verdict | 'neither';
  evidence: string;
}

describe('every daily CLI command as each default role, against relais start --config', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let root: string;
  let setUp: string;
  let config: string;
  let broker: RunningCli;
  let url: string;
  let tlsUrl: string;
  const tokens = new Map<string, string>();
  const running: RunningCli[] = [];
  let witness: Bus;
  let agent: RunningCli;
  const seen: string[] = [];
  const arrivals = new EventEmitter();
  const cells = new Map<string, Cell>();

  const env = (identity: string, extra: Record<string, string> = {}) => ({ RELAIS_BROKER: url, RELAIS_ID: identity, RELAIS_TOKEN: tokens.get(identity)!, RELAIS_LOG_LEVEL: process.env.RELAIS_TEST_LOG ?? 'error', ...extra });
  const run = (identity: string, args: string[], timeout = 90_000) => runCli(args, env(identity), timeout);
  const start = (identity: string, args: string[]) => {
    const child = startCli(args, env(identity));
    running.push(child);
    return child;
  };
  const refusedOrNeither = (result: CliResult): Cell =>
    REFUSED.test(result.stderr + result.stdout) ? { verdict: 'denied', evidence: result.stderr.trim() } : { verdict: 'neither', evidence: `exit ${result.code}: ${result.stdout}${result.stderr}` };
  /** Exit 0 (with `proof` in the output, when given): allowed; a refusal for the policy: denied. */
  const byExit = (result: CliResult, proof?: RegExp): Cell => (result.code === 0 && (proof?.test(result.stdout) ?? true) ? { verdict: 'allowed', evidence: result.stdout.slice(0, 200) } : refusedOrNeither(result));
  /** The witness (an admin reading #) sends a sentinel after `topic` may have come: did it? */
  const delivered = async (topic: string, tag: string): Promise<boolean> => {
    const sentinel = `witness/sentinel-${tag}`;
    witness.notify(sentinel, {});
    await waitFor(() => seen.includes(`${sentinel}/notification`) || undefined, arrivals, 'message', 30_000);
    return seen.includes(topic);
  };

  /** How each command's cell is found, for `role` running as `identity`. */
  const COMMANDS: Record<string, (role: Role, identity: string) => Promise<Cell>> = {
    call: async (_role, identity) => byExit(await run(identity, ['call', 'demo/echo', '{"n":1}', '--timeout', '60', '--json']), /"n":1/),
    serve: async (role, identity) => {
      const action = `demo/served-by-${role}`;
      const server = start(identity, ['serve', action, '--', 'cat']);
      const ready = await server.waitFor(/serving demo\/served-by|relais: .*(Subscribe error|refused|not authori)/, 60_000).catch((error: Error) => error);
      if (ready instanceof Error || !/serving/.test(ready[0])) {
        await server.stop();
        return REFUSED.test(server.output()) ? { verdict: 'denied', evidence: server.output().trim() } : { verdict: 'neither', evidence: ready instanceof Error ? ready.message : server.output() };
      }
      try {
        await witness.waitForHandler(action, { timeout: 30_000 });
        // Its answers dropped by the broker: not even its acknowledgement comes (HandlerGoneError), or nothing in time.
        return await witness.request(action, { from: 'witness' }, { timeout: 20_000 }).then(
          (payload) => ({ verdict: 'allowed' as const, evidence: JSON.stringify(payload) }),
          (error: Error) => ({ verdict: ['HandlerGoneError', 'TimeoutError'].includes(error.name) ? ('denied' as const) : ('neither' as const), evidence: `${error.name}: ${error.message}` }),
        );
      } finally {
        await server.stop();
      }
    },
    pub: async (role, identity) => {
      const topic = `demo/pub-by-${role}/notification`;
      // A hand-written envelope says the identity as source: --no-session connects as the identity itself (a session's source is its own client id).
      const result = await run(identity, ['pub', '--no-session', topic, `{"type":"notification","source":"${identity}","destination":"*","payload":{}}`]);
      if (result.code !== 0) return { verdict: 'neither', evidence: result.stderr };
      return (await delivered(topic, `pub-${role}`)) ? { verdict: 'allowed', evidence: `${topic} delivered` } : { verdict: 'denied', evidence: `${topic} dropped by the broker` };
    },
    notify: async (role, identity) => {
      const topic = `demo/notified-by-${role}/notification`;
      const result = await run(identity, ['notify', `demo/notified-by-${role}`, '{"n":1}']);
      if (result.code !== 0) return { verdict: 'neither', evidence: result.stderr };
      return (await delivered(topic, `notify-${role}`)) ? { verdict: 'allowed', evidence: `${topic} delivered` } : { verdict: 'denied', evidence: `${topic} dropped by the broker` };
    },
    sub: async (role, identity) => {
      const category = `demo/alerts-for-${role}`;
      const reader = start(identity, ['sub', `${category}/notification`, '--count', '1']);
      const ready = await reader.waitFor(/subscribed to|relais: .*(Subscribe error|refused)/, 60_000).catch((error: Error) => error);
      if (ready instanceof Error || !/subscribed to/.test(ready[0])) {
        await reader.stop();
        return REFUSED.test(reader.output()) ? { verdict: 'denied', evidence: reader.output().trim() } : { verdict: 'neither', evidence: ready instanceof Error ? ready.message : reader.output() };
      }
      witness.notify(category, { for: role });
      const got = await reader.waitFor(/"topic":"demo\/alerts-for-\w+\/notification"/, 30_000).then(() => true, () => false);
      await reader.stop();
      return got ? { verdict: 'allowed', evidence: 'the notification printed' } : { verdict: 'neither', evidence: reader.output() };
    },
    history: async (_role, identity) => byExit(await run(identity, ['history', '--limit', '3', '--json'])),
    clients: async (_role, identity) => byExit(await run(identity, ['clients', '--json']), /"id":"relais-router"/),
    stats: async (_role, identity) => byExit(await run(identity, ['stats', '--json']), /"actions"|"broker"/),
    events: async (_role, identity) => byExit(await run(identity, ['events', '--lines', '3', '--json'])),
    logs: async (_role, identity) => byExit(await run(identity, ['logs', 'echo', '--lines', '5', '--json', '--timeout', '60'])),
    kill: async (_role, identity) => {
      // A token the router has not seen: it answers that, if the policy lets the request reach it.
      const result = await run(identity, ['kill', 'no-such-token-0000', '--json']);
      if (/is not in the history: nothing to kill/.test(result.stderr)) return { verdict: 'allowed', evidence: result.stderr.trim() };
      return refusedOrNeither(result);
    },
    exec: async (_role, identity) => {
      const result = await run(identity, ['exec', 'vm-1', '--timeout', '60', '--', '/bin/echo', 'hello']);
      return result.code === 0 && /^hello$/m.test(result.stdout) ? { verdict: 'allowed', evidence: result.stdout.trim() } : refusedOrNeither(result);
    },
    contracts: async (_role, identity) => byExit(await run(identity, ['contracts', '--json'])),
  };

  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-roles-'));
    setUp = path.join(root, 'secure');
    config = path.join(setUp, 'relais.json');
    const init = await runCli(['init', '--dir', setUp], {}, 90_000);
    assert.equal(init.code, 0, init.stderr);
    tokens.set('admin', init.stdout.match(/administrator token .*:\n(relais_\S+)\n/)![1]!);
    for (const [name, args] of ADDED) {
      const added = await runCli(['identity', 'add', name, ...args, '--config', config], {}, 60_000);
      assert.equal(added.code, 0, added.stderr);
      tokens.set(name, /^(relais_\S+)$/m.exec(added.stdout)![1]!);
    }
    // The broker's lines as an operator reads them on a terminal (in a pipe, pino's JSON escapes their quotes).
    const started = await startRelais(['--config', config, '--tls-port', '0', '--log-format', 'readable']);
    ({ cli: broker, url } = started);
    tlsUrl = started.tlsUrl!;

    witness = await connect({ id: 'witness', broker: url, username: 'witness', password: tokens.get('witness')!, logger: testLogger });
    await witness.subscribe(
      '#',
      (delivery) => {
        seen.push(delivery.topic);
        arrivals.emit('message');
      },
      { includeInvalid: true },
    );
    // The handler of `call` and `logs`: a service with its token from the environment.
    const echo = start('echo', ['serve', 'demo/echo', '--', 'cat']);
    await echo.waitFor(/serving demo\/echo/, 60_000);
    // The agent of `exec`: its token from RELAIS_TOKEN, as every command takes it.
    const agentConfig = path.join(root, 'agent.json');
    fs.writeFileSync(agentConfig, JSON.stringify({ services: { command: { ruleSet: 'test', rules: [{ name: 'echo', program: '/bin/echo', moreArgs: { pattern: '[a-z]+', max: 2 } }] } } }));
    agent = start('vm-1', ['agent', '--id', 'vm-1', '--config', agentConfig]);
    await agent.waitFor(/agent vm-1 serving/, 60_000);
    await witness.waitForHandler('system/command/run', { timeout: 30_000 });

    // One column per role, side by side; the commands of a role one after another (one identity, one connection at a time).
    await Promise.all(
      ROLES.map(async (role) => {
        for (const [command, cell] of Object.entries(COMMANDS)) cells.set(`${command} ${role}`, await cell(role, IDENTITY[role]));
      }),
    );
  });

  after(async () => {
    await witness?.close();
    for (const child of running) await child.stop();
    if (broker) assert.equal(await broker.stop('SIGINT'), 0, broker.output());
    for (const [name, token] of tokens) assert.ok(!broker.output().includes(token), `the token of ${name} in the broker's output`);
    fs.rmSync(root, { recursive: true, force: true });
  });

  for (const [command, row] of Object.entries(EXPECTED)) {
    for (const role of ROLES) {
      it(`relais ${command} as ${role} (${IDENTITY[role]}): ${row[role]}`, () => {
        const cell = cells.get(`${command} ${role}`)!;
        assert.equal(cell.verdict, row[role], cell.evidence);
      });
    }
  }

  it('exec as a client given agent-user by the operator: allowed', async () => {
    const result = await run('ops', ['exec', 'vm-1', '--timeout', '60', '--', '/bin/echo', 'granted']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^granted$/m);
  });

  it('a service serves what --serves granted it, and nothing else: the broker refuses the rest', async () => {
    const other = await run('svc', ['serve', 'billing/invoice', '--', 'cat']);
    assert.equal(other.code, 1);
    assert.match(other.stderr, REFUSED);
    await broker.waitFor(/denied subscribe to "billing\/invoice\/request" for identity svc: default-deny/);
  });

  it('relais agent takes a client certificate with --cert and --key, as every command', async () => {
    const files = ['--ca', path.join(setUp, 'ca.crt'), '--cert', path.join(setUp, 'vm-1.crt'), '--key', path.join(setUp, 'vm-1.key')];
    await agent.stop();
    const byCertificate = startCli(['agent', '--id', 'vm-1', '--broker', tlsUrl, ...files], { RELAIS_LOG_LEVEL: 'error' });
    running.push(byCertificate);
    await byCertificate.waitFor(/agent vm-1 serving/, 60_000);
    const called = await run('admin', ['call', 'system/components/discover', '--target', 'vm-1', '--timeout', '60', '--json']);
    assert.equal(called.code, 0, called.stderr);
  });

  it('relais router takes the token from RELAIS_TOKEN, as every command', async () => {
    const router = startCli(['router', '--id', 'spare-router', '--data-dir', path.join(root, 'spare')], env('spare-router'));
    running.push(router);
    await router.waitFor(/router recording the history/, 60_000);
    assert.doesNotMatch(broker.output(), /refused CONNECT of identity "spare-router"/);
    await router.stop();
  });

  it('--token-file gives the token from a file (RELAIS_TOKEN unset), and a token without --id is a usage error', async () => {
    const file = path.join(root, 'alice.token');
    fs.writeFileSync(file, `${tokens.get('alice')}\n`, { mode: 0o600 });
    const byFile = await runCli(['call', 'demo/echo', '{"n":2}', '--broker', url, '--id', 'alice', '--token-file', file, '--json', '--timeout', '60'], { RELAIS_LOG_LEVEL: 'error' });
    assert.equal(byFile.code, 0, byFile.stderr);
    const noId = await runCli(['call', 'demo/echo', '--broker', url], { RELAIS_TOKEN: tokens.get('alice')! });
    assert.equal(noId.code, 2);
    assert.match(noId.stderr, /a token \(RELAIS_TOKEN\) is the password of an identity: give it with --id <identity>/);
  });

  it('--help of every command that connects names RELAIS_TOKEN', async () => {
    for (const command of ['agent', 'router', 'call', 'serve', 'pub', 'sub', 'history', 'exec']) {
      const help = await runCli([command, '--help']);
      assert.match(help.stdout, /RELAIS_TOKEN=<token> +the identity's token/, command);
    }
  });
});
