/**
 * The page on a secure bus (`relais start --secure`, the default policy): the login form, the
 * broker's refusal, a token never rendered, what the policy denies said plainly, and the
 * console checking a payload against the action's contract (protocol §7.6).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { chromiumGate, launchChromium, screenshot, startContractHandler, startStack, type Stack } from './page-kit.js';

const gate = chromiumGate();

describe('the dashboard page on a secure bus', { skip: gate.skip, timeout: 120_000 }, () => {
  let stack: Stack;
  let handler: { stop(): Promise<void> };
  let browser: Browser;
  let page: Page;
  const consoleLines: string[] = [];

  before(async () => {
    stack = await startStack('login', { 'web-user': ['client'], 'web-resizer': ['service'] }, { 'web-resizer': ['demo/#'] });
    handler = await startContractHandler(stack, 'web-resizer', stack.tokens['web-resizer']);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
    page.on('console', (message) => consoleLines.push(message.text()));
    await page.goto(`${stack.pageUrl}#/clients`);
  });

  after(async () => {
    await browser?.close();
    await handler?.stop();
    await stack?.stop();
  });

  it('login - a bus with security shows the login form and says why', async () => {
    await page.getByRole('button', { name: 'Log in' }).waitFor({ timeout: 15_000 });
    assert.match(await page.getByRole('alert').innerText(), /needs an identity and a token/);
    await screenshot(page, 'login-form');
  });

  it('login - a wrong token is refused with the reason, and the token field comes back empty', async () => {
    await page.getByLabel('Identity').fill('web-user');
    await page.getByLabel('Token').fill('relais_not-the-token');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').filter({ hasText: 'refused the identity or token' }).waitFor({ timeout: 10_000 });
    assert.equal(await page.getByLabel('Token').inputValue(), '');
  });

  it('login - the right token connects as that identity, and is never rendered or logged', async () => {
    const token = stack.tokens['web-user']!;
    await page.getByLabel('Identity').fill('web-user');
    await page.getByLabel('Token').fill(token);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('[data-testid="connection"]', { hasText: 'connected as web-user' }).waitFor({ timeout: 10_000 });
    await page.locator('tr[data-client="web-resizer"][data-status="alive"]').waitFor({ timeout: 10_000 });
    assert.ok(!(await page.content()).includes(token), 'the token is not in the page');
    assert.ok(!consoleLines.some((line) => line.includes(token)), 'the token is not in the console');
    await screenshot(page, 'login-connected');
  });

  it('topics - when the policy denies # the view says so', async () => {
    await page.getByRole('link', { name: 'Topics' }).click();
    const denied = page.locator('[data-testid="topics-denied"]');
    await denied.waitFor({ timeout: 10_000 });
    assert.match(await denied.innerText(), /does not let this identity subscribe to #/);
    await screenshot(page, 'topics-denied');
  });

  it("console - a payload that breaks the action's contract is refused before sending, naming the field", async () => {
    await page.getByRole('link', { name: 'Console' }).click();
    await page.getByLabel('Action').selectOption('demo/resize');
    await page.locator('details summary', { hasText: 'Contract of demo/resize (from web-resizer)' }).waitFor({ timeout: 10_000 });
    await page.getByLabel('Payload (JSON)').fill('{"width": "wide"}');
    await page.locator('#payload-problems', { hasText: 'payload.width' }).waitFor({ timeout: 5_000 });
    assert.equal(await page.getByRole('button', { name: 'Send' }).isDisabled(), true);
    await screenshot(page, 'console-contract');
    await page.getByLabel('Payload (JSON)').fill('{"width": 640}');
    assert.equal(await page.locator('#payload-problems').innerText(), '');
    await page.getByRole('button', { name: 'Send' }).click();
    const run = page.locator('.run').first();
    await run.locator('.run-state[data-state="done"]').waitFor({ timeout: 10_000 });
    assert.match(await run.locator('.result').innerText(), /"width": 640/);
  });

  it('login - log out closes the connection and forgets the token', async () => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('button', { name: 'Log in' }).waitFor({ timeout: 5_000 });
    assert.equal(await page.evaluate<string | null>("sessionStorage.getItem('relais.credentials')"), null);
    await page.reload();
    await page.getByRole('button', { name: 'Log in' }).waitFor({ timeout: 10_000 });
  });
});
