/**
 * `--kv-config <file>` (protocol §14.2): `relais start` serves the buckets with the settings the
 * file gives; a file with a wrong setting stops the command with exit 2 naming the field. Real
 * processes (after `npx tsc -p tsconfig.build.json`).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { connect } from '../../src/index.js';
import { BucketNotFoundError, KV_ACTIONS, type KvBuckets } from '../../src/protocol/kv.js';
import { runCli, startCli, type RunningCli } from '../testkit/cli.js';
import { testLogger } from '../testkit/index.js';

describe('relais start --kv-config', { timeout: 180_000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-kv-config-'));
  let running: RunningCli | undefined;
  after(async () => {
    await running?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('kv-config - a wrong setting exits 2 naming the field', async () => {
    const file = path.join(dir, 'bad.yaml');
    fs.writeFileSync(file, 'buckets:\n  rooms:\n    historyDepth: 500\n');
    const result = await runCli(['router', '--kv-config', file, '--data-dir', path.join(dir, 'bad'), '--broker', 'mqtt://127.0.0.1:1']);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /--kv-config .*bad\.yaml: buckets\.rooms\.historyDepth: /);
  });

  it("kv-config - relais start serves the file's bucket settings and refuses a bucket it does not list when createOnPut is false", async () => {
    const file = path.join(dir, 'kv.yaml');
    fs.writeFileSync(file, 'createOnPut: false\nbuckets:\n  rooms:\n    historyDepth: 3\n    maxValueBytes: 1000\n');
    running = startCli(['start', '--kv-config', file, '--data-dir', path.join(dir, 'data'), '--port', '0', '--web-port', '0']);
    const [, url] = await running.waitFor(/listening on (mqtt:\/\/\S+)/);
    await running.waitFor(/router recording/);
    const bus = await connect({ id: 'kv-config-check', broker: url!, logger: testLogger, realtimeLane: false });
    try {
      await bus.waitForHandler(KV_ACTIONS.buckets, { timeout: 30_000 });
      const { buckets } = (await bus.request(KV_ACTIONS.buckets, {})) as KvBuckets;
      const rooms = buckets.find((bucket) => bucket.name === 'rooms');
      assert.deepEqual(rooms && [rooms.historyDepth, rooms.maxValueBytes], [3, 1000]);
      await assert.rejects(bus.kv('elsewhere').put('k', 1), BucketNotFoundError);
      assert.equal(await bus.kv('rooms').put('k', 1), 1);
    } finally {
      await bus.close();
    }
  });
});
