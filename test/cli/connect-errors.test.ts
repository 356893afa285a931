/**
 * A command that cannot connect says so in one line naming the fix (src/cli/connection-failure.ts),
 * not with the library's warnings first (`MQTT connection error`, `built-in action not served:
 * subscribing failed`). Real processes: `relais start --config` from `relais init` (TLS with its
 * own CA, identities by certificate and token), Mosquitto with a TLS listener, and a port with
 * nothing behind it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, hasBinary, startMosquitto, type TestBroker } from '../testkit/brokers.js';
import { CLI_SUITE_TIMEOUT, runCli, startRelais, type CliResult, type RelaisStart } from '../testkit/cli.js';

/** What the user sees: one line on stderr, exit 1. */
function oneLine(result: CliResult): string {
  assert.equal(result.code, 1, `exit ${result.code}; stderr:\n${result.stderr}`);
  const lines = result.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line, got:\n${result.stderr}`);
  assert.doesNotMatch(result.stderr, /built-in action not served|MQTT connection error|subscribing failed/);
  return lines[0]!;
}

describe('a command that cannot connect: one line that names the fix', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let root: string;
  let setUp: string;
  let relais: RelaisStart;
  let tlsUrl: string;
  let plainUrl: string;
  const file = (name: string) => path.join(setUp, name);
  // No saved context of the developer's (an empty RELAIS_CONTEXT names none).
  const env = () => ({ RELAIS_CONTEXT: '', XDG_CONFIG_HOME: path.join(root, 'config') });

  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-connect-errors-'));
    setUp = path.join(root, 'secure');
    const init = await runCli(['init', '--dir', setUp], env());
    assert.equal(init.code, 0, init.stderr);
    relais = await startRelais(['--config', file('relais.json'), '--tls-port', '0']);
    plainUrl = relais.url;
    tlsUrl = relais.tlsUrl!;
  });

  after(async () => {
    await relais?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("the broker's CA not given: self-signed certificate in certificate chain → pass --ca", async () => {
    const line = oneLine(await runCli(['clients', '--broker', tlsUrl, '--cert', file('admin.crt'), '--key', file('admin.key'), '--id', 'admin'], env()));
    assert.match(line, /^relais: cannot connect to the broker at mqtts:\/\/localhost:\d+: self-signed certificate in certificate chain → pass --ca <ca\.crt>/);
  });

  it('a certificate with another client id: Identifier rejected → --id <the CN of --cert>; without --id, a one-shot command is a session of the CN', async () => {
    const line = oneLine(await runCli(['clients', '--broker', tlsUrl, '--ca', file('ca.crt'), '--cert', file('admin.crt'), '--key', file('admin.key'), '--id', 'cli-someone'], env()));
    assert.match(line, /Identifier rejected → the client id must be your identity or a session of it: --id admin or --id admin~<session> \(the CN of --cert; the broker's log says when the policy's sessions\.max is reached\)$/);
    const asSession = await runCli(['clients', '--broker', tlsUrl, '--ca', file('ca.crt'), '--cert', file('admin.crt'), '--key', file('admin.key')], env());
    assert.equal(asSession.code, 0, asSession.stderr);
  });

  it('no token: Bad username or password → set RELAIS_TOKEN or --token-file; a wrong one: the token of <id> refused', async () => {
    const missing = oneLine(await runCli(['clients', '--broker', plainUrl], env()));
    assert.match(missing, /Bad username or password → set RELAIS_TOKEN or --token-file/);
    const wrong = oneLine(await runCli(['clients', '--broker', plainUrl, '--id', 'admin'], { ...env(), RELAIS_TOKEN: 'relais_not-the-token' }));
    assert.match(wrong, /Bad username or password → the broker refused the token of admin: check RELAIS_TOKEN or --token-file/);
    assert.doesNotMatch(wrong, /relais_not-the-token/, 'the token is never printed');
  });

  it('nothing listening: connection refused → is a broker running at <url>? (relais start); a password in the URL stays masked', async () => {
    const port = await freePort();
    const line = oneLine(await runCli(['pub', 'demo/x', '{}', '--broker', `mqtt://alice:hunter2@127.0.0.1:${port}`], env()));
    assert.match(line, new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${port} → is a broker running at mqtt://alice:\\*\\*\\*@127\\.0\\.0\\.1:${port}\\? \\(relais start\\)$`));
    assert.doesNotMatch(line, /hunter2/);
  });

  it('the fix named works: with --ca and --id the same command connects', async () => {
    const result = await runCli(['clients', '--broker', tlsUrl, '--ca', file('ca.crt'), '--cert', file('admin.crt'), '--key', file('admin.key'), '--id', 'admin'], env());
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /"id":"relais-router"/);
  });

  describe('Mosquitto over TLS', { skip: hasBinary('mosquitto') ? false : 'mosquitto not installed' }, () => {
    let mosquitto: TestBroker;
    let caFile: string;
    before(async () => {
      mosquitto = await startMosquitto({ tls: true });
      caFile = path.join(root, 'mosquitto-ca.crt');
      fs.writeFileSync(caFile, mosquitto.tlsCa!);
    });
    after(() => mosquitto?.stop());

    it('a self-signed broker certificate not trusted: → pass --ca; with it, pub goes through', async () => {
      const line = oneLine(await runCli(['pub', 'demo/x', '{"n":1}', '--broker', mosquitto.tlsUrl!], env()));
      assert.match(line, /self-signed certificate → pass --ca <ca\.crt>/);
      const trusted = await runCli(['pub', 'demo/x', '{"n":1}', '--broker', mosquitto.tlsUrl!, '--ca', caFile], env());
      assert.equal(trusted.code, 0, trusted.stderr);
      assert.equal(trusted.stderr, '');
    });
  });
});
