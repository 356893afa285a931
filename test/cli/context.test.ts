/**
 * Named contexts (`relais context`, src/cli/context.ts): saved 0600 under the user's config
 * directory with paths, never a token; used with --context, RELAIS_CONTEXT or once selected;
 * a flag beats its environment variable, which beats the context, which beats the default.
 * Real processes: `relais init`, `relais start --config`, the CLI as a user runs it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../testkit/brokers.js';
import { CLI_SUITE_TIMEOUT, runCli, startRelais, type RelaisStart } from '../testkit/cli.js';

describe('relais context', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let root: string;
  let setUp: string;
  let config: string;
  let started: RelaisStart;
  let plainUrl: string;
  let initOutput: string;
  let adminToken: string;
  const file = (name: string) => path.join(setUp, name);
  const contextsFile = () => path.join(config, 'relais', 'contexts.json');
  const relais = (args: string[], env: Record<string, string> = {}) => runCli(args, { RELAIS_CONTEXT: '', XDG_CONFIG_HOME: config, ...env });
  const ok = async (args: string[], env: Record<string, string> = {}) => {
    const result = await relais(args, env);
    assert.equal(result.code, 0, `relais ${args.join(' ')}: exit ${result.code}\n${result.stderr}`);
    return result;
  };

  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-context-'));
    setUp = path.join(root, 'secure');
    config = path.join(root, 'config');
    const init = await ok(['init', '--dir', setUp]);
    initOutput = init.stdout;
    adminToken = /administrator token .*:\n(relais_\S+)\n/.exec(init.stdout)![1]!;
    started = await startRelais(['--config', path.join(setUp, 'relais.json'), '--tls-port', '0']);
    plainUrl = started.url;
  });

  after(async () => {
    await started?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("init's output ends with a context add for its admin; run as printed (with this broker's port), it is saved 0600 in a 0700 directory and selected, and relais clients needs no flag", async () => {
    const printed = /^ {2}relais (context add \S+ --broker mqtts:\/\/\S+ --ca \S+ --cert \S+ --key \S+ --id admin --select)$/m.exec(initOutput);
    assert.ok(printed, `no context add line in:\n${initOutput}`);
    // The printed host is this machine's name (resolvable here); only the port is this test's.
    const args = printed[1]!.replace(/--broker mqtts:\/\/[^:\s]+:\d+/, `--broker ${started.tlsUrl!}`).split(' ');
    const name = args[2]!;
    const added = await ok(args);
    assert.match(added.stdout, new RegExp(`context ${name} saved and selected`));
    assert.equal(fs.statSync(contextsFile()).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(contextsFile())).mode & 0o777, 0o700);
    const saved = JSON.parse(fs.readFileSync(contextsFile(), 'utf8')) as { selected: string; contexts: Record<string, Record<string, string>> };
    assert.equal(saved.selected, name);
    assert.equal(saved.contexts[name]!.ca, file('ca.crt'), 'paths are saved absolute');
    const clients = await ok(['clients']);
    assert.match(clients.stdout, /"id":"relais-router",[^\n]*"status":"alive"/);
    const listed = await ok(['context', 'ls']);
    assert.match(listed.stdout, new RegExp(`^\\* +${name.replace('.', '\\.')} +${started.tlsUrl!} +admin`, 'm'));
  });

  it('a token file is saved as its path, never the token; --context uses it over plain MQTT', async () => {
    const tokenFile = path.join(root, 'admin.token');
    fs.writeFileSync(tokenFile, `${adminToken}\n`, { mode: 0o600 });
    await ok(['context', 'add', 'plain', '--broker', plainUrl, '--id', 'admin', '--token-file', tokenFile, '--description', 'loopback, by token']);
    const text = fs.readFileSync(contextsFile(), 'utf8');
    assert.ok(!text.includes(adminToken), 'the token is in the contexts file');
    assert.ok(text.includes(tokenFile));
    assert.equal(fs.statSync(contextsFile()).mode & 0o777, 0o600, 'still 0600 once rewritten');
    const shown = await ok(['context', 'show', 'plain']);
    assert.match(shown.stdout, new RegExp(`--token-file +${tokenFile}`));
    assert.doesNotMatch(shown.stdout, /relais_/);
    const clients = await ok(['clients', '--context', 'plain']);
    assert.match(clients.stdout, /"id":"relais-router"/);
  });

  it('precedence: --broker beats RELAIS_BROKER, which beats RELAIS_CONTEXT, which beats the selected context', async () => {
    const nowhere = `mqtt://127.0.0.1:${await freePort()}`;
    const elsewhere = `mqtt://127.0.0.1:${await freePort()}`;
    // RELAIS_CONTEXT picks plain over the selected TLS context: the token file connects.
    assert.match((await ok(['clients'], { RELAIS_CONTEXT: 'plain' })).stdout, /"id":"relais-router"/);
    // The environment's broker beats the context's; the flag beats the environment.
    const byEnvironment = await relais(['clients'], { RELAIS_CONTEXT: 'plain', RELAIS_BROKER: nowhere });
    assert.equal(byEnvironment.code, 1);
    assert.match(byEnvironment.stderr, new RegExp(`is a broker running at ${nowhere}\\?`));
    const byFlag = await relais(['clients', '--broker', elsewhere], { RELAIS_CONTEXT: 'plain', RELAIS_BROKER: nowhere });
    assert.equal(byFlag.code, 1);
    assert.match(byFlag.stderr, new RegExp(`is a broker running at ${elsewhere}\\?`));
    // RELAIS_TOKEN beats the context's token file.
    const byToken = await relais(['clients', '--context', 'plain'], { RELAIS_TOKEN: 'relais_wrong' });
    assert.equal(byToken.code, 1);
    assert.match(byToken.stderr, /the broker refused the token of admin/);
  });

  it('select, rm and the mistakes: an unknown context exits 2 naming the saved ones; a password in the broker URL is refused', async () => {
    await ok(['context', 'select', 'plain']);
    assert.equal((await ok(['context', 'select'])).stdout, 'plain\n');
    const unknown = await relais(['clients', '--context', 'staging']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^relais: --context: no context named staging \(saved: .*plain/);
    const withPassword = await relais(['context', 'add', 'leaky', '--broker', 'mqtt://admin:secret@127.0.0.1:1883']);
    assert.equal(withPassword.code, 2);
    assert.match(withPassword.stderr, /holds a password.*--token-file/);
    assert.ok(!fs.readFileSync(contextsFile(), 'utf8').includes('secret'));
    const removed = await ok(['context', 'rm', 'plain']);
    assert.match(removed.stdout, /context plain removed; no context is selected now/);
    assert.doesNotMatch((await ok(['context', 'ls'])).stdout, /plain/);
    // None selected: the default broker again, whatever the contexts file says.
    const noContext = await relais(['clients', '--broker', `mqtt://127.0.0.1:${await freePort()}`]);
    assert.equal(noContext.code, 1);
  });

  it('--help of a connecting command names RELAIS_TOKEN and --context', async () => {
    const help = await ok(['clients', '--help']);
    assert.match(help.stdout, /RELAIS_TOKEN=<token>/);
    assert.match(help.stdout, /--context <name>/);
  });
});
