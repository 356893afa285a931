/**
 * The Python package installs offline, the way clients/python/README.md and docs/python.md say:
 * Debian's python3, python3-venv, python3-setuptools, python3-wheel and python3-paho-mqtt, then
 *
 *   python3 -m venv --system-site-packages .venv
 *   .venv/bin/pip install --no-index --no-build-isolation ./clients/python
 *
 * Every proxy variable points at a closed port, so a step that tried to fetch from a Python
 * registry would fail here. The installed copy (not the source tree) is then imported from
 * outside the repository and `python -m relais --help` runs from it.
 *
 * Without those Debian packages: a loud line and a skip, or a failure under
 * RELAIS_REQUIRE_PEERS=1 (CI installs them). RELAIS_PYTHON_PACKAGE installs another copy of
 * the package (a broken one, to see this test fail).
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { PYTHON, PYTHON_PACKAGE_DIR, pythonGate } from '../testkit/python.js';

const run = promisify(execFile);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** What the install needs beyond python3 and paho, each a Debian package (python3-pip brings python3-wheel). */
const BUILD_TOOLS = 'import venv, ensurepip, setuptools, wheel';

/** pythonGate (Python and paho), then the build tools, with the same rule: a loud skip, or a failure under RELAIS_REQUIRE_PEERS=1. */
function installGate(): { skip: string | false } {
  const what = 'the offline install of the Python package';
  const python = pythonGate(what);
  if (python.skip) return python;
  const probe = spawnSync(PYTHON, ['-c', BUILD_TOOLS], { encoding: 'utf8', timeout: 30_000 });
  if (probe.status === 0) return { skip: false };
  const why = `${PYTHON} cannot ${BUILD_TOOLS}: ${(probe.stderr ?? '').trim().split('\n').pop()} (apt-get install python3-venv python3-setuptools python3-pip)`;
  if (process.env.RELAIS_REQUIRE_PEERS === '1') throw new Error(`RELAIS_REQUIRE_PEERS=1 but ${what} cannot run: ${why}`);
  const line = `!!! SKIPPING ${what}: ${why} !!!`;
  console.error(`\n${'!'.repeat(line.length)}\n${line}\n${'!'.repeat(line.length)}\n`);
  return { skip: why };
}

/** No network for pip: any fetch goes to a closed port of loopback and fails. */
const CLOSED = 'http://127.0.0.1:9';
const offline: NodeJS.ProcessEnv = {
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: os.tmpdir(),
  LANG: 'C.UTF-8',
  http_proxy: CLOSED,
  https_proxy: CLOSED,
  HTTP_PROXY: CLOSED,
  HTTPS_PROXY: CLOSED,
  no_proxy: '',
  PIP_CONFIG_FILE: os.devNull,
  PIP_DISABLE_PIP_VERSION_CHECK: '1',
};

const gate = installGate();

describe('the Python package installs offline', { timeout: 240_000 }, () => {
  test('into a venv with Debian packages only: importable from the venv, py.typed shipped, version = package.json, python -m relais --help', { skip: gate.skip }, async () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-py-install-'));
    try {
      // A copy: pip builds in the tree it is given (build/, *.egg-info), and the worktree stays clean.
      const tree = path.join(work, 'src');
      fs.cpSync(PYTHON_PACKAGE_DIR, tree, { recursive: true, filter: (file) => !/(^|\/)(build|__pycache__|\.venv|[^/]*\.egg-info)$/.test(file) });
      const venv = path.join(work, 'venv');
      await run(PYTHON, ['-m', 'venv', '--system-site-packages', venv], { env: offline, timeout: 120_000 });
      const pip = await run(path.join(venv, 'bin/pip'), ['install', '--no-index', '--no-build-isolation', tree], { env: offline, timeout: 180_000 }).catch((error: { stdout?: string; stderr?: string; message: string }) => {
        assert.fail(`pip install failed: ${error.message}\n${error.stdout ?? ''}\n${error.stderr ?? ''}`);
      });
      assert.match(pip.stdout, /Successfully installed relais-/, pip.stdout);

      // From a directory outside the repository, with no PYTHONPATH: only the venv's copy can be found.
      const venvPython = path.join(venv, 'bin/python');
      const inspect = [
        'import importlib.metadata as m, json, os, relais',
        'here = os.path.dirname(relais.__file__)',
        "print(json.dumps({'file': relais.__file__, 'typed': os.path.exists(os.path.join(here, 'py.typed')), 'version': m.version('relais'), 'requires': m.requires('relais') or [], 'connect': callable(getattr(relais, 'connect', None))}))",
      ].join('\n');
      const shown = await run(venvPython, ['-c', inspect], { env: offline, cwd: work, timeout: 60_000 });
      const found = JSON.parse(shown.stdout.trim().split('\n').pop()!) as { file: string; typed: boolean; version: string; requires: string[]; connect: boolean };
      assert.ok(found.file.startsWith(path.join(venv, 'lib')), `relais imported from ${found.file}, not from the venv`);
      assert.ok(found.typed, 'py.typed is not installed with the package (PEP 561)');
      const npmVersion = (JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string }).version;
      assert.equal(found.version, npmVersion, "clients/python/pyproject.toml's version differs from package.json's");
      assert.ok(found.requires.some((requirement) => /^paho-mqtt\b/.test(requirement)), `paho-mqtt is not a declared dependency: ${found.requires.join(', ')}`);
      assert.ok(found.connect, 'relais.connect is missing from the installed package');

      const help = await run(venvPython, ['-m', 'relais', '--help'], { env: offline, cwd: work, timeout: 60_000 });
      for (const command of ['call', 'serve', 'sub']) assert.match(help.stdout, new RegExp(`\\b${command}\\b`), help.stdout);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
});
