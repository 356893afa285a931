/**
 * The Python package's own tests run by the standard `unittest` runner with Debian's python3,
 * once with each paho version: clients/python/tests/unit (the state machines ported from
 * src/protocol, with the same tables as test/unit; the pure modules import no paho, and
 * whatever does must work with both), and clients/python/tests/live (the runtime against a
 * real Mosquitto and the TS CLI: signatures, sites, built-in actions, a packet the broker
 * refuses). A live test skips itself without Mosquitto; under RELAIS_REQUIRE_PEERS=1 a skip
 * fails the run, as the TS suites' peer gates do.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { PAHO_VERSIONS, PYTHON, PYTHON_PACKAGE_DIR, pythonEnvironment, pythonGate } from '../testkit/python.js';

function unittest(suite: string, version: 1 | 2): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    execFile(
      PYTHON,
      ['-m', 'unittest', 'discover', '-s', suite, '-t', '.'],
      { cwd: PYTHON_PACKAGE_DIR, env: pythonEnvironment(version), timeout: 240_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, output: `${stdout}${stderr}` }),
    );
  });
}

for (const suite of ['tests/unit', 'tests/live']) {
  for (const version of PAHO_VERSIONS) {
    describe(`python ${suite} with paho ${version}.x`, { skip: pythonGate(`the Python ${suite} with paho ${version}.x`, version).skip, timeout: 300_000 }, () => {
      it(`unittest - every test of ${path.join('clients/python', suite)} passes`, async () => {
        const { code, output } = await unittest(suite, version);
        assert.equal(code, 0, `python3 -m unittest exited ${code}:\n${output}`);
        // "Ran 0 tests" exits 0 too (a discovery that found nothing): it must have run some.
        const ran = /Ran (\d+) tests? in/.exec(output);
        assert.ok(ran && Number(ran[1]) > 0, `the unittest run found no test:\n${output}`);
        const skipped = /OK \(skipped=(\d+)\)/.exec(output);
        if (process.env.RELAIS_REQUIRE_PEERS === '1') assert.equal(skipped, null, `RELAIS_REQUIRE_PEERS=1 but ${skipped?.[1]} test(s) skipped (a peer is missing):\n${output}`);
      });
    });
  }
}
