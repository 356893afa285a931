/**
 * Binary payloads at the HTTP edge (docs/http-api.md, protocol §3.5): a body sent as
 * application/octet-stream is the command's payload as bytes; the history answers binary rows
 * with Base64 data, their size and SHA-256; bytes go nowhere else than /api/actions.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { connect, type Bus } from '../../src/index.js';
import { startCli, type RunningCli } from '../testkit/cli.js';
import { testLogger, uniqueId } from '../testkit/index.js';
import { http, pollUntil, tempDir, type Answer } from './web-kit.js';

describe('HTTP API with binary payloads', { timeout: 120_000 }, () => {
  let dir: string;
  let start: RunningCli;
  let handler: Bus;
  let base: string;
  const seen: unknown[] = [];

  before(async () => {
    dir = tempDir('binary-api');
    start = startCli(['start', '--port', '0', '--web-port', '0', '--data-dir', path.join(dir, 'data')], { RELAIS_LOG_LEVEL: 'error' });
    const [, web] = await start.waitFor(/web page and HTTP API on (http:\/\/\S+)\//);
    const [, broker] = await start.waitFor(/listening on (mqtt:\/\/\S+)/);
    base = web!;
    handler = await connect({ id: uniqueId('web-handler'), broker: broker!, logger: testLogger });
    await handler.handle('demo/reverse', (payload: unknown) => {
      seen.push(payload);
      return Buffer.isBuffer(payload) ? Buffer.from(payload).reverse() : { notBytes: true };
    });
  });
  after(async () => {
    await handler?.close();
    await start?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('POST /api/actions with application/octet-stream - the bytes are the payload; the history answers Base64 with size and SHA-256', async () => {
    const bytes = Buffer.concat([Buffer.from([0x0a, 0, 0xff]), randomBytes(3000)]);
    const response = await fetch(`${base}/api/actions/demo/reverse?timeout=5000`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: bytes });
    const sent = { status: response.status, body: (await response.json()) as { token: string } };
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    const history = await pollUntil(
      () => http('GET', `${base}/api/history/${sent.body.token}`),
      (answer: Answer) => answer.status === 200 && answer.body.rows.some((row: { kind: string }) => row.kind === 'final'),
      'the final row',
    );
    assert.ok(Buffer.isBuffer(seen.at(-1)) && (seen.at(-1) as Buffer).equals(bytes), 'the handler got the bytes');
    const rows = history.body.rows as Array<{ kind: string; data: string; size: number; sha256?: string }>;
    const command = rows.find((row) => row.kind === 'command')!;
    const final = rows.find((row) => row.kind === 'final')!;
    assert.equal(command.sha256, createHash('sha256').update(bytes).digest('hex'));
    assert.equal(command.size, bytes.length);
    assert.ok(Buffer.from(command.data, 'base64').equals(bytes));
    assert.ok(Buffer.from(final.data, 'base64').equals(Buffer.from(bytes).reverse()));
  });

  it('bytes to another route - 415, naming where bytes go', async () => {
    const response = await fetch(`${base}/api/kill/abc`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: Buffer.from([1, 2, 3]) });
    assert.equal(response.status, 415);
    assert.match(await response.text(), /bytes only to \/api\/actions/);
  });
});
