/**
 * Standard MQTT 3.1.1 clients that are not MQTT.js, against a real `relais start` at its
 * defaults: Debian's python3-paho-mqtt with keep-alive 0 (legal, MQTT 3.1.1 §3.1.2.10, and the
 * default of several clients and test suites). Debian 12's mosquitto_sub 2.0.11 refuses `-k 0`
 * itself (it takes 5 to 65535), so it cannot be the peer here; mosquitto_pub/sub at their
 * defaults are in interop.test.ts.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startCli, type RunningCli } from '../testkit/cli.js';
import { uniqueId } from '../testkit/index.js';

const PYTHON = '/usr/bin/python3';
const FIXTURE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/paho-conformance.py');

/** Debian's paho is seen by Debian's python only (a pyenv python3 on the PATH does not see it). */
function hasPaho(): boolean {
  try {
    return fs.existsSync(PYTHON) && fs.readdirSync('/usr/lib/python3/dist-packages').includes('paho');
  } catch {
    return false;
  }
}

function pahoGate(): { skip: string | false } {
  if (hasPaho()) return { skip: false };
  const what = 'the standard-client tests with python3-paho-mqtt (apt-get install python3-paho-mqtt)';
  if (process.env.RELAIS_REQUIRE_PEERS === '1') throw new Error(`RELAIS_REQUIRE_PEERS=1 but ${what} cannot run: /usr/bin/python3 has no paho`);
  process.stderr.write(`\n*** SKIPPING ${what}: /usr/bin/python3 has no paho ***\n\n`);
  return { skip: 'python3-paho-mqtt is not installed' };
}

function run(file: string, args: string[], timeout: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout }, (error, stdout, stderr) => resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stdout, stderr }));
  });
}

describe('standard MQTT clients against relais start (keep-alive 0)', { timeout: 90_000 }, () => {
  let dir: string;
  let start: RunningCli;
  let port: string;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-standard-'));
    start = startCli(['start', '--port', '0', '--no-web', '--data-dir', path.join(dir, 'data')]);
    port = (await start.waitFor(/broker listening on mqtt:\/\/127\.0\.0\.1:(\d+)/, 30_000))[1]!;
  });
  after(async () => {
    await start?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('python3-paho-mqtt', { skip: pahoGate().skip }, () => {
    let checks: Map<string, { ok: boolean; detail: string }>;
    before(async () => {
      const result = await run(PYTHON, [FIXTURE, '127.0.0.1', port, uniqueId('paho')], 60_000);
      checks = new Map(result.stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => {
        const { check, ok, detail } = JSON.parse(line) as { check: string; ok: boolean; detail: string };
        return [check, { ok, detail }];
      }));
      assert.equal(checks.size, 5, `the paho fixture ran ${checks.size} of 5 checks: ${result.stdout}${result.stderr}`);
    });
    const expect = (name: string) => () => {
      const check = checks.get(name)!;
      assert.ok(check.ok, check.detail);
    };
    it('paho keep-alive 0 - connects (CONNACK 0)', expect('connects'));
    it('paho keep-alive 0 - subscribes (granted QoS 1), publishes, receives its message', expect('publish-subscribe'));
    it('paho keep-alive 0 - a retained message reaches a later subscriber with its retain flag', expect('retained'));
    it('paho keep-alive 0 - a persistent session (clean session 0) gets the QoS 1 message published while it was away', expect('persistent-session'));
    it('paho keep-alive 0 - its will is published when its connection is lost without DISCONNECT', expect('will'));
  });
});
