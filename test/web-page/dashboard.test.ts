/**
 * The page end to end, as a user sees it (docs/web.md): `relais start` serving it, a real agent and
 * a `relais serve` handler, Debian's chromium. Each scenario leaves a screenshot in
 * test-artifacts/web/.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page, WebSocketRoute } from 'playwright-core';
import { runCli, type RunningCli } from '../testkit/cli.js';
import { chromiumGate, launchChromium, openPage, screenshot, startAgent, startProgressHandler, startStack, type Stack } from './page-kit.js';

const gate = chromiumGate();
/** protocol §1.1: the broker notices a silent death within 1.5 × the 30 s keep-alive. */
const KEEPALIVE_WINDOW_MS = 45_000;
const STEPS_SCRIPT = 'cat >/dev/null; for p in 0.25 0.5 0.75 1; do echo "{\\"progress\\": $p, \\"step\\": $p}"; sleep 0.1; done; echo "{\\"installed\\": true}"';

describe('the dashboard page in chromium', { skip: gate.skip, timeout: 180_000 }, () => {
  let stack: Stack;
  let agent: RunningCli;
  let handler: RunningCli;
  let browser: Browser;
  let page: Page;
  const agentId = `web-agent-${process.pid}`;
  const handlerId = `web-steps-${process.pid}`;

  before(async () => {
    stack = await startStack('dashboard');
    [agent, handler] = await Promise.all([startAgent(stack, agentId), startProgressHandler(stack, handlerId, 'demo/steps', STEPS_SCRIPT, { RELAIS_LOG_LEVEL: 'warn' })]);
    browser = await launchChromium();
    page = await openPage(browser, `${stack.pageUrl}#/clients`, { width: 1100, height: 800 });
  });

  after(async () => {
    await browser?.close();
    await Promise.all([agent?.stop(), handler?.stop()]);
    await stack?.stop();
  });

  it('clients - the table shows the agent alive, with its host and actions', async () => {
    const row = page.locator(`tr[data-client="${agentId}"]`);
    await row.and(page.locator('[data-status="alive"]')).waitFor({ timeout: 15_000 });
    assert.match(await row.innerText(), /system\/command\/run/);
    assert.equal(await row.locator('.status').innerText(), 'alive');
    await screenshot(page, 'clients-alive');
  });

  it('console - a command shows acceptance, a progress bar reaching 100 % and the result', async () => {
    await page.getByRole('link', { name: 'Console' }).click();
    await page.getByLabel('Action').selectOption('demo/steps');
    await page.getByLabel('Payload (JSON)').fill('{"name": "w"}');
    await page.getByRole('button', { name: 'Send' }).click();
    const run = page.locator('.run').first();
    await run.locator('.run-state[data-state="done"]').waitFor({ timeout: 15_000 });
    assert.match(await run.locator('.run-state').innerText(), new RegExp(`Accepted by ${handlerId}`));
    assert.equal(await run.locator('progress').getAttribute('data-percent'), '100');
    assert.match(await run.locator('.percent').innerText(), /100 %/);
    // Each progress step streamed in, in order, then the result.
    assert.match(await run.locator('.output').innerText(), /"step":0\.25[\s\S]*"step":0\.5[\s\S]*"step":0\.75[\s\S]*"step":1/);
    assert.match(await run.locator('.result').innerText(), /"installed": true/);
    await screenshot(page, 'console-progress');
  });

  it('history - the token opens as a timeline: sent, accepted, progress, final, with who did each step', async () => {
    const run = page.locator('.run').first();
    const token = (await run.getAttribute('data-token'))!;
    await run.getByRole('link', { name: token }).click();
    const steps = page.locator('ol.timeline li');
    await steps.locator('text=final').waitFor({ timeout: 10_000 });
    const kinds = await steps.evaluateAll((items) => items.map((item) => item.getAttribute('data-kind')));
    assert.equal(kinds[0], 'command');
    assert.equal(kinds[kinds.length - 1], 'final');
    assert.deepEqual(kinds.filter((kind) => kind === 'progress').length, 4);
    assert.ok(kinds.indexOf('accepted') < kinds.indexOf('progress'), `accepted before progress: ${kinds.join(', ')}`);
    assert.match(await steps.first().innerText(), /sent\s+by web-\S+ to web-steps/);
    assert.match(await steps.last().innerText(), new RegExp(`\\+\\d+ ms.*final\\s+from ${handlerId}\\s+code 0`));
    assert.match(await page.locator('#timeline-title + p').innerText(), /demo\/steps, ended in \d+ ms/);
    await screenshot(page, 'history-timeline');
    // The search finds it by action and code.
    await page.getByRole('link', { name: '← Search' }).click();
    await page.getByLabel('Action').fill('demo/steps');
    await page.getByLabel('Code').fill('0');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.locator(`table.history tr[data-token="${token}"]`).waitFor({ timeout: 10_000 });
    await page.getByRole('link', { name: 'Console' }).click();
  });

  it('console - an invalid JSON payload is refused before sending', async () => {
    await page.getByLabel('Payload (JSON)').fill('{"name": ');
    assert.equal(await page.getByRole('button', { name: 'Send' }).isDisabled(), true);
    assert.match(await page.locator('#payload-problems').innerText(), /not JSON/);
    await page.getByLabel('Payload (JSON)').fill('{}');
  });

  it('console - cancel stops a long command on the agent', async () => {
    await page.getByLabel('Action').selectOption('system/command/run');
    await page.getByLabel('Target').selectOption(agentId);
    await page.getByLabel('Payload (JSON)').fill(JSON.stringify({ command: ['/bin/sh', '-c', 'echo started; sleep 1000'] }));
    await page.getByRole('button', { name: 'Send' }).click();
    const run = page.locator('.run').first();
    await run.locator('.output', { hasText: 'started' }).waitFor({ timeout: 15_000 });
    const token = await run.getAttribute('data-token');
    await run.getByRole('button', { name: 'Cancel' }).click();
    await run.locator('.run-state[data-state="failed"]').waitFor({ timeout: 5_000 });
    assert.match(await run.locator('.error-answer').innerText(), /CancelledError \(code 5\)/);
    // The agent really stopped it: its process group was killed on the cancel.
    // A readable line on a terminal, a JSON one in a pipe (the agent's log format).
    const escaped = token!.replace('.', '\\.');
    await agent.waitFor(new RegExp(`command ended.*${escaped}.*killed|${escaped}.*killed.*command ended`), 10_000);
    await screenshot(page, 'console-cancel');
  });

  it('console - without a target, two commands at once go to two providers: the least busy, as the library picks', async () => {
    const secondId = `${handlerId}-b`;
    const second = await startProgressHandler(stack, secondId, 'demo/steps', STEPS_SCRIPT, { RELAIS_LOG_LEVEL: 'warn' });
    try {
      await page.getByRole('navigation').getByRole('link', { name: 'Clients' }).click();
      await page.locator(`tr[data-client="${secondId}"][data-status="alive"]`).waitFor({ timeout: 15_000 });
      await page.getByRole('link', { name: 'Console' }).click();
      await page.getByLabel('Action').selectOption('demo/steps');
      await page.getByLabel('Target').selectOption({ label: 'any provider (the least busy)' });
      await page.getByLabel('Payload (JSON)').fill('{}');
      // The second while the first runs (its steps take 0.4 s): the other provider is less busy.
      await page.getByRole('button', { name: 'Send' }).click();
      await page.locator('.run').first().locator('.run-state[data-state="accepted"], .run-state[data-state="done"]').waitFor({ timeout: 10_000 });
      await page.getByRole('button', { name: 'Send' }).click();
      const runs = page.locator('.run');
      for (const at of [0, 1]) await runs.nth(at).locator('.run-state[data-state="done"]').waitFor({ timeout: 15_000 });
      const targets = await Promise.all([0, 1].map(async (at) => /→ (\S+)/.exec(await runs.nth(at).locator('h2').innerText())?.[1]));
      assert.deepEqual(new Set(targets), new Set([handlerId, secondId]), `one each: ${targets.join(', ')}`);
    } finally {
      await second.stop();
    }
  });

  it("clients - a client's page shows its details, its recent events and, on demand, its logs", async () => {
    // Something for the handler's log (kept from warn, as it logs): a request that is no envelope.
    const published = await runCli(['pub', `demo/steps/request/${handlerId}`, '{"not": "an envelope"}'], stack.env);
    assert.equal(published.code, 0, published.stderr);
    await page.getByRole('navigation').getByRole('link', { name: 'Clients' }).click();
    await page.getByRole('link', { name: handlerId, exact: true }).click();
    await page.locator('#client-title', { hasText: new RegExp(`^${handlerId}\\s`) }).waitFor({ timeout: 5_000 });
    // The detail is live: on a loaded machine the registry may still be catching up with the handler's presence.
    await page.locator('dl.details', { hasText: /Actions\s*demo\/steps/ }).waitFor({ timeout: 15_000 });
    // Its recent events: the command it ran for the console.
    await page.locator('ol.events li[data-type="request.finished"]', { hasText: 'demo/steps done' }).first().waitFor({ timeout: 10_000 });
    // Logs first: asked for on opening; Fetch logs asks again.
    await page.locator('pre.logs').waitFor({ timeout: 10_000 });
    await page.getByRole('button', { name: 'Fetch logs' }).click();
    // relais/logs/get answered (protocol §11.4): its warning about the bad request is there.
    await page.locator('pre.logs', { hasText: /WARN\s+invalid request/ }).waitFor({ timeout: 10_000 });
    await screenshot(page, 'client-page');
  });

  it('clients - an agent killed with SIGKILL turns dead within the keep-alive window', async () => {
    const doomedId = `web-doomed-${process.pid}`;
    const doomed = await startAgent(stack, doomedId);
    await page.getByRole('navigation').getByRole('link', { name: 'Clients' }).click();
    const row = page.locator(`tr[data-client="${doomedId}"]`);
    await row.and(page.locator('[data-status="alive"]')).waitFor({ timeout: 15_000 });
    await doomed.stop('SIGKILL');
    await row.and(page.locator('[data-status="dead"]')).waitFor({ timeout: KEEPALIVE_WINDOW_MS });
    assert.equal(await row.locator('.status').innerText(), 'dead');
    await screenshot(page, 'clients-dead');
  });

  it('events - the list shows clients coming and going and the requests; Pause holds new ones; filters narrow it', async () => {
    await page.getByRole('link', { name: 'Events' }).click();
    const events = page.locator('ol.events');
    await events.locator(`li[data-type="client"]`, { hasText: `web-doomed-${process.pid}` }).filter({ has: page.locator('[data-status="dead"]') }).waitFor({ timeout: 10_000 });
    await events.locator('li[data-type="request.finished"]', { hasText: 'demo/steps done' }).first().waitFor({ timeout: 10_000 });
    await events.locator('li[data-type="request.started"]', { hasText: 'system/command/run' }).waitFor({ timeout: 10_000 });
    await events.locator('li[data-type="request.finished"]', { hasText: 'system/command/run failed, code 5' }).waitFor({ timeout: 10_000 });
    await screenshot(page, 'events');
    // Pause holds new events back (and counts them) until Resume.
    // Every event, the internal ones too: the cursors must follow each other.
    await page.getByLabel('Show internal').check();
    const shown = Math.max(...(await cursorsShown(page)));
    await page.getByRole('button', { name: 'Pause' }).click();
    const call = await runCli(['call', 'demo/steps', '{}'], stack.env);
    assert.equal(call.code, 0, call.stderr);
    await page.getByRole('button', { name: /^Resume \([1-9]\d* waiting\)$/ }).waitFor({ timeout: 10_000 });
    assert.equal(Math.max(...(await cursorsShown(page))), shown, 'nothing added while paused');
    await page.getByRole('button', { name: /^Resume/ }).click();
    await page.getByRole('button', { name: 'Pause' }).waitFor();
    assert.ok(Math.max(...(await cursorsShown(page))) > shown, 'the held events are shown on Resume');
    // Filters: by type, and by source.
    await page.getByLabel('Type').selectOption('request.finished');
    assert.deepEqual(new Set(await page.locator('ol.events li').evaluateAll((items) => items.map((item) => item.getAttribute('data-type')))), new Set(['request.finished']));
    await page.getByLabel('Type').selectOption('');
    await page.getByLabel('Source').fill(`web-doomed-${process.pid}`);
    assert.ok((await page.locator('ol.events li').allInnerTexts()).every((text) => text.includes(`web-doomed-${process.pid}`)));
    await page.getByLabel('Source').fill('');

  });

  it('events - after a reload the stream resumes from its cursor without a gap, and says so', async () => {
    const before = await cursorsShown(page);
    const last = Math.max(...before);
    // The page is gone while requests run; the tab's sessionStorage keeps its cursor.
    await page.goto('about:blank');
    for (let i = 0; i < 3; i++) {
      const call = await runCli(['call', 'demo/steps', '{}'], stack.env);
      assert.equal(call.code, 0, call.stderr);
    }
    await page.goto(`${stack.pageUrl}#/events`);
    await page.getByLabel('Show internal').check();
    const notice = page.locator('[data-notice="resumed"]');
    await notice.waitFor({ timeout: 15_000 });
    assert.match(await notice.innerText(), new RegExp(`Resumed after the reload from cursor ${last}: \\d+ new events?, no gap`));
    await page.locator('li[data-type="request.finished"]').nth(3).waitFor({ timeout: 10_000 });
    const after = await cursorsShown(page);
    const newest = Math.max(...after);
    assert.ok(newest >= last + 6, `the 3 calls' started and finished events are shown (newest ${newest}, last before ${last})`);
    for (let cursor = last + 1; cursor <= newest; cursor++) assert.ok(after.includes(cursor), `event ${cursor} is shown: no gap after ${last}`);
    await screenshot(page, 'events-resumed');
  });

  it('events - after a network drop the stream resumes from its cursor without a gap, and says so', async () => {
    // The page's WebSocket goes through playwright: cut it, and refuse new ones, to drop the network.
    const dropped = await browser.newPage({ viewport: { width: 1100, height: 800 } });
    let offline = false;
    const sockets = new Set<WebSocketRoute>();
    await dropped.routeWebSocket(/\/mqtt$/, (socket) => {
      if (offline) return void socket.close({ code: 4000, reason: 'offline' });
      socket.connectToServer();
      sockets.add(socket);
    });
    try {
      await dropped.goto(`${stack.pageUrl}#/events`);
      await dropped.getByLabel('Show internal').check();
      await dropped.locator('[data-notice="started"]').waitFor({ timeout: 15_000 });
      await dropped.locator('ol.events li[data-cursor]').first().waitFor();
      const last = Math.max(...(await cursorsShown(dropped)));
      offline = true;
      for (const socket of sockets) await socket.close({ code: 4000, reason: 'network drop' });
      await dropped.locator('[data-testid="connection"]', { hasText: 'reconnecting' }).waitFor({ timeout: 10_000 });
      for (let i = 0; i < 2; i++) {
        const call = await runCli(['call', 'demo/steps', '{}'], stack.env);
        assert.equal(call.code, 0, call.stderr);
      }
      offline = false;
      const notice = dropped.locator('[data-notice="resumed"]');
      await notice.waitFor({ timeout: 15_000 });
      assert.match(await notice.innerText(), new RegExp(`Resumed after the connection came back from cursor ${last}: \\d+ new events?, no gap`));
      const after = await cursorsShown(dropped);
      const newest = Math.max(...after);
      assert.ok(newest >= last + 4, `the 2 calls' started and finished events are shown (newest ${newest}, last before ${last})`);
      for (let cursor = last + 1; cursor <= newest; cursor++) assert.ok(after.includes(cursor), `event ${cursor} is shown: no gap after ${last}`);
      await screenshot(dropped, 'events-network-drop');
    } finally {
      await dropped.close();
    }
  });

  it('topics - the tree shows the topics seen, with counts and the last message', async () => {
    await page.getByRole('link', { name: 'Topics' }).click();
    await page.locator('.tree').waitFor();
    const call = await runCli(['call', 'demo/steps', '{"from":"topics"}', '--id', `web-topics-${process.pid}`], stack.env);
    assert.equal(call.code, 0, call.stderr);
    const topic = page.locator(`button[data-topic="demo/steps/response/web-topics-${process.pid}"]`);
    await topic.waitFor({ timeout: 10_000 });
    await topic.click();
    // The detail follows the topic live: its last message ends as the final answer.
    await page.locator('.topic-detail [data-testid="payload"]', { hasText: '"installed": true' }).waitFor({ timeout: 10_000 });
    const count = Number(/^web-topics-\d+ (\d+) · /.exec(await topic.innerText())?.[1]);
    assert.ok(count >= 5, `the 4 progress steps and the final were counted (${count})`);
    assert.equal(await page.locator('[data-testid="topics-denied"]').count(), 0);
    await screenshot(page, 'topics');
  });

  it('metrics - request rate, error rate and latency charts per action, from the router', async () => {
    await page.getByRole('link', { name: 'Metrics' }).click();
    // The router publishes a snapshot every 10 s (protocol §11.6).
    const section = page.locator('section.metrics-action[data-action="demo/steps"]');
    await section.waitFor({ timeout: 25_000 });
    assert.equal(await section.locator('svg').count(), 3);
    assert.match(await section.locator('svg').last().getAttribute('aria-label') ?? '', /Latency: latest p50 \d/);
    await screenshot(page, 'metrics');
  });

  it('keyboard - a command is sent from the console with the keyboard alone', async () => {
    await page.goto(`${stack.pageUrl}#/clients`);
    await page.locator(`tr[data-client="${agentId}"]`).waitFor({ timeout: 15_000 });
    await tabTo(page, 'nav a[href="#/console"]');
    await page.keyboard.press('Enter');
    await tabTo(page, 'select[name="action"]');
    await page.keyboard.type('demo/steps');
    await tabTo(page, 'textarea[name="payload"]');
    await page.keyboard.press('Control+A');
    await page.keyboard.type('{"by": "keyboard"}');
    await tabTo(page, 'button[type="submit"]');
    await page.keyboard.press('Enter');
    const run = page.locator('.run').first();
    await run.locator('.run-state[data-state="done"]').waitFor({ timeout: 15_000 });
    assert.match(await run.locator('h2').innerText(), /^demo\/steps → web-steps/);
    await screenshot(page, 'keyboard-console');
  });

  it('layout - on a phone-sized screen nothing overflows sideways and the clients read as cards', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${stack.pageUrl}#/clients`);
    await page.locator(`tr[data-client="${agentId}"]`).waitFor({ timeout: 15_000 });
    // Strings: the test's tsconfig has no DOM types; this runs in the page.
    const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
    assert.ok(overflow <= 0, `the page is ${overflow} px wider than the screen`);
    assert.equal(await page.evaluate<string>(`getComputedStyle(document.querySelector('tr[data-client="${agentId}"]')).display`), 'block');
    await screenshot(page, 'phone-clients');
    await page.setViewportSize({ width: 1100, height: 800 });
  });
});

async function cursorsShown(page: Page): Promise<number[]> {
  return page.locator('ol.events li[data-cursor]').evaluateAll((items) => items.map((item) => Number(item.getAttribute('data-cursor'))));
}

/** Presses Tab until `selector` has the focus: it must be reachable in the focus order. */
async function tabTo(page: Page, selector: string): Promise<void> {
  for (let presses = 0; presses < 40; presses++) {
    await page.keyboard.press('Tab');
    if (await page.locator(selector).evaluate((element) => element === element.ownerDocument.activeElement)) return;
  }
  assert.fail(`${selector} was not reached with 40 presses of Tab`);
}
