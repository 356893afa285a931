/**
 * `relais` loads only the command it runs (src/cli/commands.ts): `relais --help` lists every
 * command without loading one, and `relais pub` / `relais call` load no broker, router, SQLite
 * or web server, bundled (npm run build) or compiled (tsc alone). Evidence is the modules each
 * process loaded (test/testkit/cli-modules.ts), not a timer; bench/cli-startup.ts has the times.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type Bus } from '../../src/index.js';
import { startAedes, type TestBroker } from '../testkit/brokers.js';
import { CLI_SUITE_TIMEOUT, RELAIS_BIN, runCli } from '../testkit/cli.js';
import { runCliLoggingModules } from '../testkit/cli-modules.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const COMPILED = path.join(root, 'dist/cli/main.js');
const BUNDLED = path.join(root, 'dist/cli-bundle/main.js');

/** What only a server command needs: the broker, the router and its SQLite or PostgreSQL store, the web server, the agent, bridges, sites, X.509. */
const SERVER_MODULE = /\/node_modules\/(aedes[^/]*|better-sqlite3|pg|fastify|@fastify\/[^/]+|@peculiar\/x509|serialport)\/|\/dist\/(broker|router|web|agent|bridge|sites)\//;

const packagesOf = (modules: string[]) => [...new Set(modules.flatMap((url) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1] ?? []))].sort();
const words = (text: string) => text.replace(/\s+/g, ' ');

describe('relais start-up: what each command loads', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let broker: TestBroker;
  let handler: Bus;
  let env: Record<string, string>;
  let COMMANDS: typeof import('../../src/cli/commands.js').COMMANDS;

  before(async () => {
    // What `npm run build` makes after tsc: the bundle bin/relais.js prefers when it is fresh.
    execFileSync(process.execPath, [path.join(root, 'scripts/bundle-cli.mjs')], { stdio: 'pipe' });
    ({ COMMANDS } = await import(path.join(root, 'dist/cli/commands.js')));
    broker = await startAedes();
    handler = await connect({ id: 'startup-echo', broker: broker.url });
    await handler.handle('startup/echo', (payload) => payload);
    env = { RELAIS_BROKER: broker.url, RELAIS_LOG_LEVEL: 'error' };
  });

  after(async () => {
    await handler?.close();
    await broker?.close();
  });

  it('relais --help lists every command with its arguments and summary, loading none of them', async () => {
    const result = await runCliLoggingModules(['--help']);
    assert.equal(result.code, 0, result.stderr);
    for (const entry of COMMANDS) assert.ok(words(result.stdout).includes(` ${entry.name} ${entry.usage} ${entry.summary}`), `${entry.name} is not listed as the table says:\n${result.stdout}`);
    assert.match(result.stdout, /RELAIS_TOKEN/);
    assert.deepEqual(packagesOf(result.modules), ['commander']);
  });

  for (const [label, entry] of [['bundled (npm run build)', RELAIS_BIN], ['compiled (tsc alone)', COMPILED]] as const) {
    it(`relais pub and relais call load no broker, router, SQLite or web server: ${label}`, async () => {
      const runs = [['pub', '--help'], ['call', '--help'], ['pub', 'startup/topic', '{"n":1}'], ['call', 'startup/echo', '{"n":2}']];
      for (const args of runs) {
        const result = await runCliLoggingModules(args, env, entry);
        assert.equal(result.code, 0, `relais ${args.join(' ')}: ${result.stderr}`);
        if (args[0] === 'call' && args[1] !== '--help') assert.match(result.stdout, /"kind":"final".*"payload":\{"n":2\}/);
        assert.deepEqual(result.modules.filter((url) => SERVER_MODULE.test(url)), [], `relais ${args.join(' ')} loaded server modules`);
        if (entry === RELAIS_BIN) assert.ok(result.modules.some((url) => url.includes('/dist/cli-bundle/')) && !result.modules.some((url) => url.includes('/dist/cli/')), `relais ${args.join(' ')} did not run from the bundle`);
      }
    });
  }

  it('relais start --help does load the broker, the router, SQLite and the web server (what the check above looks for is seen)', async () => {
    const result = await runCliLoggingModules(['start', '--help']);
    assert.equal(result.code, 0, result.stderr);
    const packages = packagesOf(result.modules);
    for (const expected of ['aedes', 'better-sqlite3', 'fastify']) assert.ok(packages.includes(expected), `${expected} not among ${packages.join(', ')}`);
    assert.ok(result.modules.some((url) => /\/dist\/router\//.test(url)) && result.modules.some((url) => /\/dist\/web\//.test(url)));
  });

  it("a test's CLI run does not take the credentials of the shell running the tests (RELAIS_TOKEN, a selected context)", async () => {
    const config = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-shell-config-'));
    const saved = { RELAIS_TOKEN: process.env.RELAIS_TOKEN, XDG_CONFIG_HOME: process.env.XDG_CONFIG_HOME };
    try {
      // The shell's own set-up, either of which would make this run fail (exit 2): a token without
      // its --id, and a selected context whose CA file is not on this machine.
      fs.mkdirSync(path.join(config, 'relais'));
      fs.writeFileSync(path.join(config, 'relais/contexts.json'), JSON.stringify({ version: 1, selected: 'prod', contexts: { prod: { broker: 'mqtts://prod.example:8883', ca: path.join(config, 'missing-ca.crt') } } }), { mode: 0o600 });
      Object.assign(process.env, { RELAIS_TOKEN: 'the-shell-token', XDG_CONFIG_HOME: config });
      const result = await runCli(['call', 'startup/echo', '{"n":3}'], { RELAIS_BROKER: broker.url });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /"payload":\{"n":3\}/);
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
      fs.rmSync(config, { recursive: true, force: true });
    }
  });

  it("each command's own --help names it with the arguments the list shows", async () => {
    for (const entry of COMMANDS) {
      const command = await entry.load();
      assert.equal(command.name(), entry.name);
      assert.equal(command.usage(), entry.usage, `relais ${entry.name}: the table in src/cli/commands.ts says ${entry.usage}`);
    }
  });
});

describe('bin/relais.js: the bundle only when it is newer than the compiled CLI', () => {
  // A copy of bin/relais.js over a package whose two entry files say which one ran.
  const copy = (bundleAge: 'newer' | 'older' | 'missing') => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-bin-'));
    fs.mkdirSync(path.join(dir, 'bin'));
    fs.copyFileSync(RELAIS_BIN, path.join(dir, 'bin/relais.js'));
    fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}');
    for (const [folder, text] of [['dist/cli', 'compiled'], ['dist/cli-bundle', 'bundled']] as const) {
      if (folder === 'dist/cli-bundle' && bundleAge === 'missing') continue;
      fs.mkdirSync(path.join(dir, folder), { recursive: true });
      fs.writeFileSync(path.join(dir, folder, 'main.js'), `console.log(${JSON.stringify(text)});`);
    }
    const now = Date.now() / 1000;
    fs.utimesSync(path.join(dir, 'dist/cli/main.js'), now - 60, now - 60);
    if (bundleAge !== 'missing') fs.utimesSync(path.join(dir, 'dist/cli-bundle/main.js'), now + (bundleAge === 'newer' ? 0 : -120), now + (bundleAge === 'newer' ? 0 : -120));
    return dir;
  };
  for (const [bundleAge, expected] of [['newer', 'bundled'], ['older', 'compiled'], ['missing', 'compiled']] as const) {
    it(`bundle ${bundleAge}: runs the ${expected} CLI`, () => {
      const dir = copy(bundleAge);
      try {
        assert.equal(execFileSync(process.execPath, [path.join(dir, 'bin/relais.js')]).toString().trim(), expected);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
