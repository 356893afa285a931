/**
 * Typed contracts (protocol §7.6): payloads checked before the handler runs,
 * results checked in development, contracts announced in presence and served whole; the CLI
 * prints them and writes an AsyncAPI 3 document that a real AsyncAPI parser accepts.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Parser } from '@asyncapi/parser';
import { z } from 'zod';
import { CONTRACTS_ACTION, InvalidMessageError, type Bus, type ContractsAnswer } from '../../src/index.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import { IdentityStore } from '../../src/security/identities.js';
import { defaultPolicy } from '../../src/security/default-policy.js';
import { CLI_SUITE_TIMEOUT, runCli, startRelais, type RelaisStart } from '../testkit/cli.js';
import { setup, testLogger, type Kit } from '../testkit/index.js';
import { connect } from '../../src/index.js';

const ResizeInput = z.object({ width: z.number().int().min(1), height: z.number().int().min(1), format: z.enum(['png', 'jpeg']).default('png') });
const ResizeOutput = z.object({ pixels: z.number().int() });

describe('typed contracts', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let kit: Kit;
  let handler: Bus;
  let caller: Bus;
  const seen: unknown[] = [];
  before(async () => {
    kit = await setup('aedes');
    handler = await kit.connect('imaging');
    caller = await kit.connect('designer');
    await handler.handle(
      'image/resize',
      (payload: z.output<typeof ResizeInput>) => {
        seen.push(payload);
        return { pixels: payload.width * payload.height };
      },
      { input: ResizeInput, output: ResizeOutput, description: 'resizes an image' },
    );
    await handler.handle('image/broken', async () => ({ pixels: 'many' }), { output: ResizeOutput });
  });
  after(() => kit.cleanup());

  it('input - a payload that breaks the contract is refused with code 2 naming the field; the handler never runs', async () => {
    const error = await caller.request('image/resize', { width: '3', height: 0 }, { timeout: 5000 }).then(
      () => assert.fail('accepted'),
      (caught: unknown) => caught,
    );
    assert.ok(error instanceof InvalidMessageError, String(error));
    assert.match(error.message, /invalid payload for image\/resize: payload\.width: .*number.*; payload\.height: .*>=\s*1/i);
    assert.deepEqual(seen, []);
  });

  it('input - a valid payload reaches the handler parsed (defaults applied)', async () => {
    assert.deepEqual(await caller.request('image/resize', { width: 3, height: 2 }, { timeout: 5000 }), { pixels: 6 });
    assert.deepEqual(seen.at(-1), { width: 3, height: 2, format: 'png' });
  });

  it('output - a result that breaks the contract becomes an error response naming the field', async () => {
    await assert.rejects(caller.request('image/broken', {}, { timeout: 5000 }), /image\/broken answered a result that breaks its contract: result\.pixels: /);
  });

  it('presence announces each contract by hash; relais/contracts/get serves them as JSON Schema', async () => {
    const presence = caller.clients().find((client) => client.id === 'imaging');
    const announced = presence?.contracts as Record<string, string> | undefined;
    assert.match(announced?.['image/resize'] ?? '', /^[0-9a-f]{16}$/);
    const { actions } = await caller.request<ContractsAnswer>(CONTRACTS_ACTION, {}, { target: 'imaging', timeout: 5000 });
    const resize = actions['image/resize']!;
    assert.equal(resize.hash, announced!['image/resize']);
    assert.equal(resize.description, 'resizes an image');
    assert.deepEqual((resize.input as { required: string[] }).required, ['width', 'height']);
    assert.deepEqual((resize.input as { properties: { format: unknown } }).properties.format, { default: 'png', type: 'string', enum: ['png', 'jpeg'] });
  });
});

describe('relais contracts (CLI)', { timeout: 90_000 }, () => {
  let dir: string;
  let relais: RelaisStart;
  let url: string;
  let handler: Bus;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-contracts-'));
    relais = await startRelais(['--data-dir', dir]);
    url = relais.url;
    handler = await connect({ id: 'imaging', broker: url, logger: testLogger });
    await handler.handle('image/resize', (payload: { width: number; height: number }) => ({ pixels: payload.width * payload.height }), { input: ResizeInput, output: ResizeOutput, description: 'resizes an image' });
  });
  after(async () => {
    await handler?.close();
    await relais?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('contracts - lists each action with its schemas and who serves it', async () => {
    const listed = await runCli(['contracts', '--broker', url, '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    const lines = listed.stdout.trim().split('\n').map((line) => JSON.parse(line) as { action: string; servedBy: string[]; input: { required: string[] } });
    const resize = lines.find((line) => line.action === 'image/resize');
    assert.deepEqual(resize?.servedBy, ['imaging']);
    assert.deepEqual(resize?.input.required, ['width', 'height']);
  });

  it('contracts --asyncapi - writes an AsyncAPI 3.0 document a real parser validates, with the action and its schemas', async () => {
    const file = path.join(dir, 'asyncapi.json');
    const written = await runCli(['contracts', '--broker', url, '--asyncapi', file]);
    assert.equal(written.code, 0, written.stderr);
    const { document, diagnostics } = await new Parser().parse(fs.readFileSync(file, 'utf8'));
    const errors = diagnostics.filter((diagnostic) => diagnostic.severity === 0);
    assert.deepEqual(errors.map((diagnostic) => `${diagnostic.path.join('.')}: ${diagnostic.message}`), []);
    assert.ok(document, 'the parser gave a document');
    const addresses = document.channels().all().map((channel) => channel.address());
    assert.ok(addresses.includes('image/resize/request'), addresses.join(', '));
    assert.ok(addresses.includes('image/resize/response/{requester}'));
    const command = document.channels().all().find((channel) => channel.address() === 'image/resize/request')!.messages().all()[0];
    const payload = command?.payload()?.json() as { properties: { payload: { required: string[] } } };
    assert.deepEqual(payload.properties.payload.required, ['width', 'height']);
  });
});

describe('typed contracts under the default policy', { timeout: 30_000 }, () => {
  let dir: string;
  let broker: EmbeddedBroker;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-contracts-policy-'));
    broker = await startEmbeddedBroker({ port: 0, security: { identities: path.join(dir, 'identities.json'), policy: defaultPolicy({ serves: { svc: ['image/#'] } }) }, log: () => {} });
  });
  after(async () => {
    await broker?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a client and a service may serve and ask relais/contracts/get: no denial', async () => {
    const store = new IdentityStore(path.join(dir, 'identities.json'));
    const svc = (await store.add('svc', ['service'])).token;
    const ann = (await store.add('ann', ['client'])).token;
    const service = await connect({ id: 'svc', broker: broker.url!, username: 'svc', password: svc, logger: testLogger });
    const client = await connect({ id: 'ann', broker: broker.url!, username: 'ann', password: ann, logger: testLogger });
    try {
      await service.handle('image/resize', () => ({ pixels: 1 }), { input: ResizeInput });
      const { actions } = await client.request<ContractsAnswer>(CONTRACTS_ACTION, {}, { target: 'svc', timeout: 5000 });
      assert.ok(actions['image/resize']);
      const { byRule, ...denials } = broker.denials!;
      assert.deepEqual(denials, { connect: 0, subscribe: 0, publish: 0, source: 0 }, JSON.stringify([...byRule]));
    } finally {
      await Promise.all([service.close(), client.close()]);
    }
  });
});
