/**
 * Sealed payloads at the HTTP edge (docs/http-api.md, protocol §3.6): the API holds no key. A
 * sealed request's history rows come back as they are stored, the ciphertext in Base64 with the
 * `seal` member naming its key ids, never opened; a sealed notification's event gives its key ids
 * and size, no payload.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { connect, generateSealingKey, loadSealingKeys, readSealingPrivateKey, type Bus } from '../../src/index.js';
import { startCli, type RunningCli } from '../testkit/cli.js';
import { testLogger, uniqueId } from '../testkit/index.js';
import { http, pollUntil, tempDir, type Answer } from './web-kit.js';

describe('HTTP API with sealed payloads', { timeout: 120_000 }, () => {
  let dir: string;
  let start: RunningCli;
  let base: string;
  const buses: Bus[] = [];
  const ids = { handler: uniqueId('web-sealed-handler'), requester: uniqueId('web-sealed-requester') };
  const kids: Record<string, string> = {};
  const secret = `api-never-opens-${process.pid}`;
  let requester: Bus;

  before(async () => {
    dir = tempDir('sealed-api');
    start = startCli(['start', '--port', '0', '--web-port', '0', '--data-dir', path.join(dir, 'data')], { RELAIS_LOG_LEVEL: 'error' });
    const [, web] = await start.waitFor(/web page and HTTP API on (http:\/\/\S+)\//);
    const [, broker] = await start.waitFor(/listening on (mqtt:\/\/\S+)/);
    base = web!;
    const keysFile = path.join(dir, 'sealing-keys.json');
    for (const [role, id] of Object.entries(ids)) kids[role] = generateSealingKey(keysFile, id, dir).kid;
    const open = async (id: string) => {
      const bus = await connect({ id, broker: broker!, logger: testLogger, sealing: { privateKey: readSealingPrivateKey(path.join(dir, `${id}.sealing.key`)), keys: loadSealingKeys(keysFile) } });
      buses.push(bus);
      return bus;
    };
    const handler = await open(ids.handler);
    await handler.handle('demo/sealed/echo', (payload: { secret: string }) => ({ back: payload.secret }), { sealed: 'require' });
    requester = await open(ids.requester);
    await requester.waitForHandler('demo/sealed/echo');
  });
  after(async () => {
    await Promise.all(buses.map((bus) => bus.close()));
    await start?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('GET /api/history/<token> - sealed rows come as stored: ciphertext in Base64 and the seal member, never opened', async () => {
    const token = uniqueId('sealed');
    assert.deepEqual(await requester.request('demo/sealed/echo', { secret }, { token, seal: true }), { back: secret });
    const history = await pollUntil(
      () => http('GET', `${base}/api/history/${token}`),
      (answer: Answer) => answer.status === 200 && answer.body.rows.some((row: { kind: string }) => row.kind === 'final'),
      'the final row',
    );
    assert.ok(!JSON.stringify(history.body).includes(secret), 'no plaintext in the answer');
    const rows = history.body.rows as Array<{ kind: string; data: string; size: number; sha256?: string; seal?: { to: Array<{ kid: string }> }; opened?: boolean }>;
    const command = rows.find((row) => row.kind === 'command')!;
    const final = rows.find((row) => row.kind === 'final')!;
    assert.deepEqual(command.seal!.to.map((to) => to.kid), [kids.handler, kids.requester]);
    assert.deepEqual(final.seal!.to.map((to) => to.kid), [kids.requester]);
    assert.equal(Buffer.from(final.data, 'base64').length, final.size);
    assert.equal(final.opened, undefined);
  });

  it('GET /api/events - a sealed notification\'s event names its key ids and size, no payload', async () => {
    const category = `demo/sealed/news${process.pid}`;
    requester.notify(category, { secret }, { sealFor: [ids.handler] });
    const events = await pollUntil(
      () => http('GET', `${base}/api/events?limit=1000`),
      (answer: Answer) => answer.status === 200 && answer.body.events.some((event: { data: { category?: string } }) => event.data.category === category),
      'the notification event',
    );
    const event = (events.body.events as Array<{ type: string; data: Record<string, unknown> }>).find((candidate) => candidate.data.category === category)!;
    assert.equal(event.type, 'notification');
    assert.deepEqual({ sealed: event.data.sealed, kids: event.data.kids }, { sealed: true, kids: [kids.handler] });
    assert.equal(typeof event.data.size, 'number');
    assert.equal('payload' in event.data, false);
    assert.ok(!JSON.stringify(event).includes(secret));
  });
});
