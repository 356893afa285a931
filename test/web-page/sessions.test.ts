/**
 * One identity, many sessions (protocol §2.1), on a secure bus (`relais start --secure`, the
 * default policy): two tabs of the page and one-shot CLI commands of one identity, beside a
 * `relais serve` of that identity, all at once; none takes another's place, and the clients
 * view groups the identity's sessions under it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { runCli, startCli, type RunningCli } from '../testkit/cli.js';
import { chromiumGate, launchChromium, logIn, screenshot, startStack, type Stack } from './page-kit.js';

const gate = chromiumGate();

describe('the page with sessions of one identity', { skip: gate.skip, timeout: 180_000 }, () => {
  let stack: Stack;
  let browser: Browser;
  let serving: RunningCli;
  const tabs: Page[] = [];

  before(async () => {
    stack = await startStack('sessions', { ops: ['service'] }, { ops: ['demo/#'] });
    const env = { ...stack.env, RELAIS_TOKEN: stack.tokens.ops! };
    // The identity itself serves, as `relais serve --id ops` does.
    serving = startCli(['serve', 'demo/ping', '--id', 'ops', '--', 'cat'], env);
    await serving.waitFor(/serving demo\/ping with/, 60_000);
    browser = await launchChromium();
    for (let i = 0; i < 2; i++) {
      const page = await browser.newPage({ viewport: { width: 1200, height: 760 } });
      await page.goto(`${stack.pageUrl}#/clients`);
      await page.getByRole('button', { name: 'Log in' }).waitFor({ timeout: 15_000 });
      await logIn(page, stack, 'ops');
      tabs.push(page);
    }
  });

  after(async () => {
    await browser?.close();
    await serving?.stop();
    await stack?.stop();
  });

  it('two tabs and a CLI of one identity beside its relais serve: all connected at once, each tab a session <identity>~web-…', async () => {
    const env = { ...stack.env, RELAIS_ID: 'ops', RELAIS_TOKEN: stack.tokens.ops! };
    const call = await runCli(['call', 'demo/ping', '{"n":7}', '--json', '--timeout', '30'], env);
    assert.equal(call.code, 0, call.stderr);
    assert.match(call.stdout, /"n":7/);
    // Both tabs list both of their sessions, grouped under ops; neither was knocked off.
    for (const page of tabs) {
      await page.locator('tr.session[data-identity="ops"]').nth(1).waitFor({ timeout: 15_000 });
      assert.equal(await page.locator('[data-testid="connection"]').innerText().then((text) => /connected as ops/.test(text)), true);
    }
    const ids = await tabs[0]!.locator('tr.session[data-identity="ops"]').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-client')));
    assert.equal(ids.filter((id) => /^ops~web-[a-z0-9]+$/.test(id ?? '')).length, 2, `the tabs' sessions: ${ids.join(', ')}`);
    assert.equal(await tabs[0]!.locator('tr[data-client="ops"]:not(.session)').count(), 1, 'the identity itself (relais serve) heads the group');
    const order = await tabs[0]!.locator('tr[data-identity="ops"]').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-client')));
    assert.equal(order[0], 'ops', 'the identity first, its sessions under it');
    await screenshot(tabs[0]!, 'sessions-two-tabs-and-cli');
    // The serve is still serving: a second call is answered by it.
    const again = await runCli(['call', 'demo/ping', '{"n":8}', '--json', '--timeout', '30'], env);
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(serving.output(), /another client connected with the id|replaced/i);
  });

  it('relais clients groups the sessions under their identity', async () => {
    const env = { ...stack.env, RELAIS_ID: 'ops', RELAIS_TOKEN: stack.tokens.ops! };
    const listed = await runCli(['clients', '--json'], env);
    assert.equal(listed.code, 0, listed.stderr);
    const rows = listed.stdout.trim().split('\n').map((line) => JSON.parse(line) as { id: string; identity: string; session?: string });
    const web = rows.filter((row) => row.identity === 'ops' && row.session?.startsWith('web-'));
    assert.equal(web.length, 2, listed.stdout);
    assert.ok(rows.some((row) => row.id.startsWith('ops~cli-') && row.identity === 'ops'), 'the listing CLI itself is a session of ops');
  });
});
