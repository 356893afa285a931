/**
 * Binary payloads on the page (protocol §3.5): a binary message shows as its size and its first
 * bytes in hex, in Topics and in a request's History timeline (with its SHA-256). `relais start`
 * serving the page, a library handler, Debian's chromium; a screenshot per scenario.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { connect, type Bus } from '../../src/index.js';
import { runCli } from '../testkit/cli.js';
import { testLogger } from '../testkit/index.js';
import { chromiumGate, launchChromium, screenshot, startStack, type Stack } from './page-kit.js';

const gate = chromiumGate();

describe('binary payloads on the page in chromium', { skip: gate.skip, timeout: 240_000 }, () => {
  let stack: Stack;
  let browser: Browser;
  let page: Page;
  let handler: Bus;
  const pid = process.pid;
  let file: string;

  before(async () => {
    stack = await startStack('binary');
    file = path.join(stack.dir, 'blob.bin');
    fs.writeFileSync(file, Buffer.concat([Buffer.from([0x0a, 0x00, 0xff, 0x10]), Buffer.alloc(2996, 0xab)]));
    handler = await connect({ id: `binary-handler-${pid}`, broker: stack.env.RELAIS_BROKER!, logger: testLogger });
    await handler.handle('demo/bytes/reverse', (payload: Buffer) => Buffer.from(payload).reverse());
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (error) => console.error(`page error: ${error.message}`));
    await page.goto(`${stack.pageUrl}#/topics`);
    await page.locator('.tree').waitFor({ timeout: 15_000 });
  });

  after(async () => {
    await browser?.close();
    await handler?.close();
    await stack?.stop();
  });

  it('topics - a binary notification shows its size and first bytes in hex, never as text', async () => {
    const notified = await runCli(['notify', `demo/bytes${pid}`, '--file', file], stack.env);
    assert.equal(notified.code, 0, notified.stderr);
    const topic = page.locator(`button[data-topic="demo/bytes${pid}/notification"]`);
    await topic.waitFor({ timeout: 10_000 });
    await topic.click();
    const payload = page.locator('[data-testid="payload"]');
    await payload.filter({ hasText: '3 000 bytes: 0a 00 ff 10 ab' }).waitFor({ timeout: 10_000 });
    assert.match(await payload.innerText(), /^3 000 bytes: 0a 00 ff 10( ab){60} …$/);
    await screenshot(page, 'binary-topics-hex');
  });

  it('history - a binary request shows each step as size, hex and SHA-256', async () => {
    const call = await runCli(['call', 'demo/bytes/reverse', '--file', file, '--id', `binary-caller-${pid}`], stack.env);
    assert.equal(call.code, 0, call.stderr);
    const { token } = JSON.parse(call.stdout.trim().split('\n').at(-1)!) as { token: string };
    await page.goto(`${stack.pageUrl}#/history/${encodeURIComponent(token)}`);
    const final = page.locator('li.step-final code.binary');
    await final.waitFor({ timeout: 15_000 });
    assert.match(await final.innerText(), /^3 000 bytes: 10 ff 00 0a|^3 000 bytes: ab ab/);
    assert.match(await page.locator('li.step-command code.binary').innerText(), /^3 000 bytes: 0a 00 ff 10 ab.* \(sha256 [0-9a-f]{16}…\)$/);
    await screenshot(page, 'binary-history-timeline');
  });
});
