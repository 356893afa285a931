/**
 * Sealed payloads on the page (protocol §3.6): the page holds no key and never opens one. A
 * sealed notification shows in Topics as a lock, the key ids it is sealed for and its size; a
 * sealed request's timeline in History shows each sealed step so; the Events view the same. No
 * plaintext anywhere on the page. `relais start` serving the page, library clients with sealing
 * keys, Debian's chromium; a screenshot per scenario.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { connect, generateSealingKey, loadSealingKeys, readSealingPrivateKey, type Bus } from '../../src/index.js';
import { testLogger } from '../testkit/index.js';
import { chromiumGate, launchChromium, screenshot, startStack, type Stack } from './page-kit.js';

const gate = chromiumGate();

describe('sealed payloads on the page in chromium', { skip: gate.skip, timeout: 240_000 }, () => {
  let stack: Stack;
  let browser: Browser;
  let page: Page;
  const buses: Bus[] = [];
  const pid = process.pid;
  const ids = { handler: `sealed-handler-${pid}`, requester: `sealed-requester-${pid}` };
  const kids: Record<string, string> = {};
  const secret = `page-never-shows-${pid}`;
  let requester: Bus;

  before(async () => {
    stack = await startStack('sealed');
    const keysFile = path.join(stack.dir, 'sealing-keys.json');
    for (const [role, id] of Object.entries(ids)) kids[role] = generateSealingKey(keysFile, id, stack.dir).kid;
    const open = async (id: string) => {
      const bus = await connect({ id, broker: stack.env.RELAIS_BROKER!, logger: testLogger, sealing: { privateKey: readSealingPrivateKey(path.join(stack.dir, `${id}.sealing.key`)), keys: loadSealingKeys(keysFile) } });
      buses.push(bus);
      return bus;
    };
    const handler = await open(ids.handler);
    await handler.handle('demo/sealed/echo', (payload: { secret: string }) => ({ back: payload.secret }), { sealed: 'require' });
    requester = await open(ids.requester);
    await requester.waitForHandler('demo/sealed/echo');
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (error) => console.error(`page error: ${error.message}`));
    await page.goto(`${stack.pageUrl}#/topics`);
    await page.locator('.tree').waitFor({ timeout: 15_000 });
  });

  after(async () => {
    await browser?.close();
    await Promise.all(buses.map((bus) => bus.close()));
    await stack?.stop();
  });

  it('topics - a sealed notification shows a lock, whom it is sealed for and its size, never its bytes', async () => {
    requester.notify(`demo/sealed${pid}`, { secret }, { sealFor: [ids.handler] });
    const topic = page.locator(`button[data-topic="demo/sealed${pid}/notification"]`);
    await topic.waitFor({ timeout: 10_000 });
    await topic.click();
    const payload = page.locator('[data-testid="payload"]');
    await payload.filter({ hasText: 'sealed for' }).waitFor({ timeout: 10_000 });
    assert.match(await payload.innerText(), new RegExp(`^🔒 sealed for ${kids.handler} · \\d+ bytes$`));
    assert.ok(!(await page.content()).includes(secret), 'no plaintext on the page');
    await screenshot(page, 'sealed-topics');
  });

  it('history - a sealed request shows each sealed step as sealed for its keys, never opened', async () => {
    const token = `sealed-token-${pid}`;
    assert.deepEqual(await requester.request('demo/sealed/echo', { secret }, { token, seal: true }), { back: secret });
    await page.goto(`${stack.pageUrl}#/history/${encodeURIComponent(token)}`);
    const final = page.locator('li.step-final code.sealed');
    await final.waitFor({ timeout: 15_000 });
    assert.match(await final.innerText(), new RegExp(`^🔒 sealed for ${kids.requester} · \\d+ bytes$`));
    assert.match(await page.locator('li.step-command code.sealed').innerText(), new RegExp(`^🔒 sealed for ${kids.handler}, ${kids.requester} · \\d+ bytes$`));
    assert.ok(!(await page.content()).includes(secret), 'no plaintext on the page');
    await screenshot(page, 'sealed-history-timeline');
  });

  it('events - a sealed notification\'s event shows whom it is sealed for and its size', async () => {
    await page.goto(`${stack.pageUrl}#/events`);
    await page.locator('li', { hasText: `demo/sealed${pid}` }).first().waitFor({ timeout: 15_000 });
    requester.notify(`demo/sealed${pid}`, { secret, again: true }, { sealFor: [ids.handler] });
    const line = page.locator('li', { hasText: `demo/sealed${pid} from ${ids.requester}` }).last();
    await line.waitFor({ timeout: 15_000 });
    assert.match(await line.innerText(), new RegExp(`🔒 sealed for ${kids.handler} · \\d+ bytes`));
    assert.ok(!(await page.content()).includes(secret), 'no plaintext on the page');
    await screenshot(page, 'sealed-events');
  });
});
