/** The soak's broken policies: each is refused by the loader relais start uses, for the file relais init writes (YAML) and for a JSON one. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { BROKEN_POLICIES, brokenPolicyText } from '../../soak/policy-fault.js';
import { loadPolicy, setServes } from '../../src/security/policy-file.js';
import { PolicyError } from '../../src/security/policy.js';

test('policy fault - every broken variant of the soak is refused, the good file loads', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-policy-fault-'));
  try {
    for (const name of ['policy.yaml', 'policy.json']) {
      const file = path.join(dir, name);
      // As the soak's deployment leaves it: the default policy and what its services serve.
      setServes(file, 'handler-1', ['soak/work', 'soak/fail']);
      setServes(file, 'agent-1', ['system/#']);
      const good = fs.readFileSync(file, 'utf8');
      assert.ok(loadPolicy(file));
      for (const variant of BROKEN_POLICIES) {
        const broken = path.join(dir, `broken-${variant}-${name}`);
        fs.writeFileSync(broken, brokenPolicyText(variant, good));
        assert.throws(() => loadPolicy(broken), PolicyError, `${name}, ${variant}: loaded`);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
