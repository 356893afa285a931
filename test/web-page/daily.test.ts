/**
 * The page for daily use, as a user of MQTT Explorer or `relais` checks it: Topics (payload
 * first, flags, last messages with their diff, numeric plot, search, publish, delete retained),
 * History (one row per request, outcome in words), Events (internal noise hidden), Clients
 * (program, version, name), a client's page (logs first with the error text), Metrics (the last
 * hour read back, a time axis) and the phone's folded navigation. `relais start` serving the page,
 * real handlers, Debian's chromium; a screenshot per scenario in test-artifacts/web/.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { runCli, type RunningCli } from '../testkit/cli.js';
import { chromiumGate, launchChromium, logIn, openPage, screenshot, startContractHandler, startProgressHandler, startStack, type Stack } from './page-kit.js';

const gate = chromiumGate();
const STEPS_SCRIPT = 'cat >/dev/null; for p in 0.5 1; do echo "{\\"progress\\": $p}"; sleep 0.05; done; echo "{\\"installed\\": true}"';
const FAIL_SCRIPT = 'cat >/dev/null; echo "disk full on /var" >&2; exit 3';
const SLOW_SCRIPT = 'cat >/dev/null; sleep 30';

describe('the page for daily use in chromium', { skip: gate.skip, timeout: 240_000 }, () => {
  let stack: Stack;
  let handlers: RunningCli[] = [];
  let named: { stop(): Promise<void> };
  let browser: Browser;
  let page: Page;
  const pid = process.pid;
  const stepsId = `daily-steps-${pid}`;
  const failId = `daily-fail-${pid}`;
  const namedId = `daily-named-${pid}`;

  before(async () => {
    stack = await startStack('daily');
    handlers = await Promise.all([
      startProgressHandler(stack, stepsId, 'demo/steps', STEPS_SCRIPT, { RELAIS_LOG_LEVEL: 'warn' }),
      startProgressHandler(stack, failId, 'demo/fail', FAIL_SCRIPT, { RELAIS_LOG_LEVEL: 'warn' }),
      startProgressHandler(stack, `daily-slow-${pid}`, 'demo/slow', SLOW_SCRIPT, { RELAIS_LOG_LEVEL: 'warn' }),
    ]);
    named = await startContractHandler(stack, namedId, undefined, { name: 'Garage door', program: 'resizer', version: '2.4.1' });
    browser = await launchChromium();
    page = await openPage(browser, `${stack.pageUrl}#/topics`);
    await page.locator('.tree').waitFor({ timeout: 15_000 });
  });

  after(async () => {
    await browser?.close();
    await Promise.all([...handlers.map((handler) => handler.stop()), named?.stop()]);
    await stack?.stop();
  });

  it('topics - a response shows its payload, not the envelope; the envelope opens on demand; flags say QoS and kind', async () => {
    const requester = `daily-topics-${pid}`;
    const call = await runCli(['call', 'demo/steps', '{"from":"topics"}', '--id', requester], stack.env);
    assert.equal(call.code, 0, call.stderr);
    const topic = page.locator(`button[data-topic="demo/steps/response/${requester}"]`);
    await topic.waitFor({ timeout: 10_000 });
    // The tree's preview is the payload too, not `{"v":1,"type":…`.
    await topic.locator('code', { hasText: '{"installed":true}' }).waitFor({ timeout: 10_000 });
    await topic.click();
    const payload = page.locator('[data-testid="payload"]');
    await payload.filter({ hasText: '"installed": true' }).waitFor({ timeout: 10_000 });
    assert.doesNotMatch(await payload.innerText(), /"type"|"source"|"token"/, 'the payload alone, without the envelope header');
    assert.match(await page.locator('.topic-detail .flags').innerText(), new RegExp(`QoS [01][\\s\\S]*response from ${stepsId}`));
    const envelope = page.locator('.topic-detail details.envelope');
    assert.equal(await envelope.locator('pre').isVisible(), false, 'the envelope is closed until asked for');
    await envelope.locator('summary').click();
    assert.match(await envelope.locator('pre').innerText(), new RegExp(`"type": "response"[\\s\\S]*"source": "${stepsId}"`));
    // Its last messages: the progress steps then the final, newest first.
    assert.ok((await page.locator('.topic-detail ol.messages li').count()) >= 3);
    await screenshot(page, 'daily-topics-payload');
  });

  it('topics - published retained twice from the panel: retained flag, the diff between the two, a plot of the numeric field', async () => {
    const topic = `home/lamp-${pid}/state`;
    const publish = async (message: string) => {
      await page.getByLabel('Topic', { exact: true }).fill(topic);
      await page.getByLabel('Message').fill(message);
      await page.getByLabel('Retain').check();
      await page.getByRole('button', { name: 'Publish' }).click();
      await page.locator('.publish [data-outcome="ok"]', { hasText: `Published on ${topic} (retained)` }).waitFor({ timeout: 10_000 });
    };
    await publish('{"temp": 20, "on": true}');
    await publish('{"temp": 21.5, "on": true}');
    await page.locator(`button[data-topic="${topic}"]`).click();
    await page.locator('.topic-detail h2', { hasText: topic }).waitFor();
    assert.equal(await page.locator('.topic-detail .flags [data-flag="retained"]').count(), 1, 'flagged retained');
    const diff = page.locator('.topic-detail ol.messages li').first().locator('pre.diff');
    await diff.waitFor({ timeout: 5_000 });
    assert.deepEqual(await diff.locator('.diff-removed').allInnerTexts(), ['-   "temp": 20,']);
    assert.deepEqual(await diff.locator('.diff-added').allInnerTexts(), ['+   "temp": 21.5,']);
    assert.match(await page.locator('[data-testid="numeric-plot"] svg').getAttribute('aria-label') ?? '', /latest temp 21\.5/);
    await screenshot(page, 'daily-topics-diff');
  });

  it('topics - the search narrows the tree to the topics whose name or payload matches', async () => {
    await page.getByLabel('Search topics').fill(`lamp-${pid}`);
    const shown = await page.locator('.tree button[data-topic]').evaluateAll((buttons) => buttons.map((button) => button.getAttribute('data-topic')));
    assert.deepEqual(shown, [`home/lamp-${pid}/state`]);
    await screenshot(page, 'daily-topics-search');
    await page.getByLabel('Search topics').fill('');
    assert.ok((await page.locator('.tree button[data-topic]').count()) > 1);
  });

  it('topics - delete retained: the broker forgets it (a page opened afterwards does not get it)', async () => {
    const topic = `home/lamp-${pid}/state`;
    await page.locator(`button[data-topic="${topic}"]`).click();
    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Delete retained message' }).click();
    await page.locator('.topic-detail [data-outcome="ok"]', { hasText: 'The retained message is deleted.' }).waitFor({ timeout: 10_000 });
    await page.locator('.topic-detail .flags [data-flag="retained"]').waitFor({ state: 'detached', timeout: 5_000 });
    await page.locator('.topic-detail ol.messages li').first().filter({ hasText: '(empty)' }).waitFor({ timeout: 5_000 });
    await screenshot(page, 'daily-topics-deleted');
    // A fresh page subscribes to # anew: the broker sends what it retains, and this topic no longer.
    const fresh = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      await fresh.goto(`${stack.pageUrl}#/topics`);
      await fresh.locator('.tree button[data-topic^="relais/presence/"]').first().waitFor({ timeout: 15_000 });
      const marker = `home/marker-${pid}`;
      await fresh.getByLabel('Topic', { exact: true }).fill(marker);
      await fresh.getByLabel('Message').fill('1');
      await fresh.getByRole('button', { name: 'Publish' }).click();
      await fresh.locator(`button[data-topic="${marker}"]`).waitFor({ timeout: 10_000 });
      assert.equal(await fresh.locator(`button[data-topic="${topic}"]`).count(), 0, 'the deleted retained message is not sent to a new subscriber');
    } finally {
      await fresh.close();
    }
  });

  it('history - one row per request: requester, handler, outcome in words and duration', async () => {
    const requester = `daily-history-${pid}`;
    const env = stack.env;
    assert.equal((await runCli(['call', 'demo/steps', '{}', '--id', requester], env)).code, 0);
    assert.notEqual((await runCli(['call', 'demo/fail', '{}', '--id', requester], env)).code, 0);
    assert.notEqual((await runCli(['call', 'demo/slow', '{}', '--id', requester, '--timeout', '1'], env)).code, 0);
    await page.getByRole('link', { name: 'History' }).click();
    await page.getByLabel('Source').fill(requester);
    await page.getByRole('button', { name: 'Search' }).click();
    const rows = page.locator('table.history tbody tr');
    await rows.nth(2).waitFor({ timeout: 10_000 });
    const read = async (action: string) => {
      const row = rows.filter({ has: page.locator('td[data-label="Action"]', { hasText: action }) });
      return { requester: await row.locator('.requester').innerText(), handler: await row.locator('.handler').innerText(), outcome: await row.locator('.outcome').innerText(), duration: await row.locator('.duration').innerText() };
    };
    const ok = await read('demo/steps');
    assert.deepEqual([ok.requester, ok.handler, ok.outcome], [requester, stepsId, 'ok']);
    assert.match(ok.duration, /^\d+ ms$|^\d+\.\d s$/);
    const failed = await read('demo/fail');
    assert.equal(failed.handler, failId);
    assert.match(failed.outcome, /^failed: .*exited with code 3: disk full on \/var$/);
    const slow = await read('demo/slow');
    assert.match(slow.outcome, /^timed out/);
    await screenshot(page, 'daily-history');
  });

  it("events - metrics and short-lived clients' comings and goings are hidden until Show internal", async () => {
    // A CLI command is an ephemeral client: its alive and forgotten are noise once it has gone.
    const caller = `daily-events-${pid}`;
    assert.equal((await runCli(['call', 'demo/steps', '{}', '--id', caller], stack.env)).code, 0);
    await page.getByRole('link', { name: 'Events' }).click();
    const events = page.locator('ol.events');
    await events.locator('li[data-type="request.finished"]', { hasText: caller }).first().waitFor({ timeout: 15_000 });
    // Its forgotten event has arrived once the registry let it go.
    await page.getByLabel('Show internal').check();
    await events.locator('li[data-type="client"]', { hasText: caller }).filter({ has: page.locator('[data-status="forgotten"]') }).waitFor({ timeout: 15_000 });
    // The router's metrics (every 10 s) are there with Show internal…
    await events.locator('li[data-type="notification"]', { hasText: 'relais/metrics' }).first().waitFor({ timeout: 25_000 });
    await screenshot(page, 'daily-events-internal');
    await page.getByLabel('Show internal').uncheck();
    // …and hidden without, as the short-lived client's events are; its request stays.
    assert.equal(await events.locator('li[data-type="notification"]', { hasText: 'relais/metrics' }).count(), 0);
    assert.equal(await events.locator('li[data-type="client"]', { hasText: caller }).count(), 0);
    assert.ok((await events.locator('li[data-type="request.finished"]', { hasText: caller }).count()) >= 1);
    assert.match(await page.locator('[data-testid="hidden-count"]').innerText(), /^\d+ internal events? hidden/);
    await screenshot(page, 'daily-events');
  });

  it('clients - program, version and friendly name; last seen moves for a connected client', async () => {
    await page.getByRole('navigation').getByRole('link', { name: 'Clients' }).click();
    const row = page.locator(`tr[data-client="${namedId}"][data-status="alive"]`);
    await row.waitFor({ timeout: 15_000 });
    assert.match(await row.locator('th').innerText(), new RegExp(`Garage door\\s+${namedId}`));
    assert.equal(await row.locator('.program').innerText(), 'resizer');
    assert.equal(await row.locator('.version').innerText(), '2.4.1');
    assert.equal(await row.locator('.last-seen').innerText(), 'now (connected)');
    // The page itself is a client: its program says what it is.
    assert.ok((await page.locator('tr td.program', { hasText: 'web page' }).count()) >= 1);
    // The table uses the width.
    const [tableWidth, viewWidth] = await page.evaluate<[number, number]>("[document.querySelector('table.clients').getBoundingClientRect().width, window.innerWidth]");
    assert.ok(tableWidth > viewWidth * 0.9, `the table is ${tableWidth} px of ${viewWidth}`);
    await screenshot(page, 'daily-clients');
  });

  it("clients - a client's page opens on its logs, with the error's text, then its actions to call, contracts and events", async () => {
    await page.goto(`${stack.pageUrl}#/clients/${failId}`);
    // No click: the logs are asked for on opening.
    const logs = page.locator('pre.logs');
    await logs.waitFor({ timeout: 15_000 });
    assert.match(await logs.innerText(), /WARN\s+handler failed.*disk full on \/var/);
    const order = await page.locator('main h2').allInnerTexts();
    assert.equal(order[0], 'Logs', `logs first: ${order.join(', ')}`);
    await screenshot(page, 'daily-client-logs');
    // "Call demo/fail" opens the console on that action and this client.
    await page.getByRole('link', { name: 'Call demo/fail' }).click();
    await page.locator('#console-title').waitFor();
    assert.equal(await page.getByLabel('Action').inputValue(), 'demo/fail');
    assert.equal(await page.getByLabel('Target').inputValue(), failId);
    // A client with a contract shows it.
    await page.goto(`${stack.pageUrl}#/clients/${namedId}`);
    await page.locator('details.contract[data-action="demo/resize"]').waitFor({ timeout: 15_000 });
    await screenshot(page, 'daily-client-contracts');
  });

  it('metrics - a page opened later reads the last hour back from the router, on a time axis', async () => {
    // At least one snapshot with demo/steps exists: the router publishes every 10 s.
    await page.goto(`${stack.pageUrl}#/events`);
    await page.getByLabel('Show internal').check();
    await page.locator('ol.events li[data-type="notification"]', { hasText: 'demo/steps' }).first().waitFor({ timeout: 25_000 });
    const later = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      await later.goto(`${stack.pageUrl}#/metrics`);
      const span = later.locator('[data-testid="metrics-span"]');
      await span.filter({ hasText: /read back from the router/ }).waitFor({ timeout: 15_000 });
      assert.match(await span.innerText(), /\(([1-9]\d*) read back from the router, \d+ since this page opened\)/);
      const section = later.locator('section.metrics-action[data-action="demo/steps"]');
      await section.waitFor({ timeout: 5_000 });
      const ticks = await section.locator('svg').first().locator('text.time-tick').evaluateAll((texts) => texts.map((text) => text.textContent ?? ''));
      assert.ok(ticks.every((tick) => /^\d\d:\d\d(:\d\d)?$/.test(tick)), `time labels: ${ticks.join(', ')}`);
      assert.match(await later.locator('[data-figure="connections"]').innerText(), /^\d+$/);
      await screenshot(later, 'daily-metrics');
    } finally {
      await later.close();
    }
  });

  it('phone - the navigation folds behind one button and opens on demand', async () => {
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 } });
    try {
      await phone.goto(`${stack.pageUrl}#/clients`);
      const menu = phone.getByRole('button', { name: /Clients/ });
      await menu.waitFor({ timeout: 15_000 });
      assert.equal(await phone.getByRole('link', { name: 'History' }).isVisible(), false, 'the links are folded');
      const headerHeight = await phone.evaluate<number>("document.querySelector('.shell header').getBoundingClientRect().height");
      assert.ok(headerHeight <= 60, `the header takes ${headerHeight} px of 844`);
      await screenshot(phone, 'daily-phone-folded');
      await menu.click();
      await phone.getByRole('link', { name: 'History' }).click();
      await phone.locator('#history-title').waitFor();
      assert.equal(await phone.getByRole('link', { name: 'Events' }).isVisible(), false, 'folded again after choosing');
      await screenshot(phone, 'daily-phone-history');
    } finally {
      await phone.close();
    }
  });
});

describe('the page with security on: the policy decides what may be published', { skip: gate.skip, timeout: 120_000 }, () => {
  let stack: Stack;
  let handler: RunningCli;
  let browser: Browser;
  let page: Page;
  const serviceId = `daily-svc-${process.pid}`;

  before(async () => {
    stack = await startStack('daily-secure', { 'daily-admin': ['admin'], [serviceId]: ['service'] }, { [serviceId]: ['demo/#'] });
    handler = await startProgressHandler(stack, serviceId, 'demo/steps', STEPS_SCRIPT, { RELAIS_TOKEN: stack.tokens[serviceId]!, RELAIS_LOG_LEVEL: 'warn' });
    browser = await launchChromium();
    page = await openPage(browser, `${stack.pageUrl}#/topics`);
    await logIn(page, stack, 'daily-admin');
  });

  after(async () => {
    await browser?.close();
    await handler?.stop();
    await stack?.stop();
  });

  it("topics - deleting another client's retained presence is refused, and the page says so", async () => {
    await page.getByRole('link', { name: 'Topics' }).click();
    const topic = `relais/presence/${serviceId}`;
    await page.locator(`button[data-topic="${topic}"]`).click({ timeout: 15_000 });
    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Delete retained message' }).click();
    const refused = page.locator('.topic-detail [data-outcome="refused"]');
    await refused.waitFor({ timeout: 10_000 });
    assert.match(await refused.innerText(), new RegExp(`^Refused: .*policy decides who may publish on ${topic.replace(/\//g, '\\/')} \\(logged in as daily-admin\\)`));
    // Still retained, still alive.
    assert.equal(await page.locator('.topic-detail .flags [data-flag="retained"]').count(), 1);
    await screenshot(page, 'daily-topics-delete-refused');
  });
});
