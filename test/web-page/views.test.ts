/**
 * The page's Events, Metrics and History views as a user checks them in chromium: events a page
 * at a time with the internal noise hidden until "Show internal"; the metrics charts on a time
 * axis, with the time `relais start` was down drawn as a gap, not a line across it; the history
 * of a request killed by an administrator with `relais kill`, in words, with its duration.
 * `relais start` serving the page, real handlers; a screenshot per scenario in test-artifacts/web/.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { connect, type Bus } from '../../src/index.js';
import type { MetricsSnapshot } from '../../src/protocol/metrics.js';
import { runCli, type RunningCli } from '../testkit/cli.js';
import { testLogger } from '../testkit/index.js';
import { chromiumGate, launchChromium, logIn, openPage, screenshot, startProgressHandler, startStack, type Stack } from './page-kit.js';

const gate = chromiumGate();
const STEPS_SCRIPT = 'cat >/dev/null; echo "{\\"done\\": true}"';
/** Longer than the page's gap (25 s: two and a half of the router's 10 s snapshots). */
const OUTAGE_MS = 35_000;

/** `HH:MM:SS` (or `HH:MM`) as seconds of the day. */
function secondsOf(label: string): number {
  const [hours, minutes, seconds] = label.split(':').map(Number);
  return hours! * 3600 + minutes! * 60 + (seconds ?? 0);
}

/**
 * Clock labels along an axis as seconds from the first label's midnight: an axis of minutes that
 * crosses midnight reads 23:59:49 then 00:00:09, which is later, not earlier. Only a fall of more
 * than half a day counts as the day turning, so ticks out of order within a day still show.
 */
function axisSecondsOf(labels: string[]): number[] {
  let days = 0;
  return labels.map((label, at) => {
    if (at > 0 && secondsOf(label) < secondsOf(labels[at - 1]!) - 12 * 3600) days++;
    return days * 24 * 3600 + secondsOf(label);
  });
}

describe("the page's events and metrics in chromium", { skip: gate.skip, timeout: 300_000 }, () => {
  let stack: Stack;
  let handler: RunningCli;
  let bus: Bus;
  let browser: Browser;
  let page: Page;
  const pid = process.pid;
  const action = `demo/views-${pid}`;
  const snapshots: MetricsSnapshot[] = [];
  const waiters = new Set<() => void>();

  /** The next snapshot the router publishes with a request of `action` in it, after `after` (epoch ms). */
  const snapshotWithAction = (after: number) =>
    new Promise<MetricsSnapshot>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no metrics snapshot with ${action} after ${after}`)), 60_000);
      const check = () => {
        const found = snapshots.find((snapshot) => snapshot.until > after && snapshot.actions[action]);
        if (!found) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(found);
      };
      waiters.add(check);
      check();
    });

  /**
   * One call of `action` after `relais start` came back. Its handler reconnects on its own backoff,
   * and the broker's retained presence says alive before it has: until it is served again, a call
   * ends with no handler (3), which is the truth, so each such call is tried again.
   */
  const callOnceServedAgain = async () => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const called = await runCli(['call', action, '{}'], stack.env);
      if (called.code === 0) return;
      assert.equal(called.code, 3, called.stderr);
      assert.ok(Date.now() < deadline, `the handler was not served again within 60 s of the restart: ${called.stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  };

  before(async () => {
    stack = await startStack('views');
    handler = await startProgressHandler(stack, `views-steps-${pid}`, action, STEPS_SCRIPT, { RELAIS_LOG_LEVEL: 'warn' });
    bus = await connect({ id: `views-watcher-${pid}`, broker: stack.env.RELAIS_BROKER!, logger: testLogger });
    await bus.subscribe('relais/metrics/notification', ({ envelope }) => {
      snapshots.push(envelope.payload as MetricsSnapshot);
      for (const waiter of [...waiters]) waiter();
    });
    browser = await launchChromium();
    page = await openPage(browser, `${stack.pageUrl}#/events`);
  });

  after(async () => {
    await browser?.close();
    await bus?.close();
    await handler?.stop();
    await stack?.stop();
  });

  it('events - 120 notifications of one category: three pages of 50, newest first; Older and Newer move between them; another filter opens on its newest page', async () => {
    const category = `demo/paging-${pid}`;
    for (let n = 0; n < 120; n++) bus.notify(category, { n });
    await page.getByLabel('Category').fill(category);
    const events = page.locator('ol.events li');
    await events.first().filter({ hasText: '{"n":119}' }).waitFor({ timeout: 15_000 });
    const pager = page.getByRole('navigation', { name: 'event pages' });
    await pager.filter({ hasText: 'Page 1 of 3 (120 events)' }).waitFor({ timeout: 15_000 });
    assert.equal(await events.count(), 50);
    assert.match(await events.last().innerText(), /\{"n":70\}/);
    assert.equal(await pager.getByRole('button', { name: 'Newer' }).isDisabled(), true);
    await screenshot(page, 'views-events-page-1');
    await pager.getByRole('button', { name: 'Older' }).click();
    await pager.filter({ hasText: 'Page 2 of 3' }).waitFor();
    assert.match(await events.first().innerText(), /\{"n":69\}/);
    await pager.getByRole('button', { name: 'Older' }).click();
    await pager.filter({ hasText: 'Page 3 of 3' }).waitFor();
    assert.equal(await events.count(), 20);
    assert.match(await events.last().innerText(), /\{"n":0\}/);
    assert.equal(await pager.getByRole('button', { name: 'Older' }).isDisabled(), true);
    await screenshot(page, 'views-events-page-3');
    await pager.getByRole('button', { name: 'Newer' }).click();
    await pager.filter({ hasText: 'Page 2 of 3' }).waitFor();
    // Another filter is another list: it opens on its newest page, not on the page number of the last one.
    await page.getByLabel('Category').fill('');
    await pager.filter({ hasText: /^Newer\s*Page 1 of \d+/ }).waitFor({ timeout: 5_000 });
    assert.equal(await pager.getByRole('button', { name: 'Newer' }).isDisabled(), true);
  });

  it('events - the internal events (metrics, short-lived clients) are hidden and left out of the pages; Show internal adds exactly them', async () => {
    // A CLI command: a short-lived client, whose alive and forgotten are internal once it has gone.
    const caller = `views-caller-${pid}`;
    assert.equal((await runCli(['call', action, '{}', '--id', caller], stack.env)).code, 0);
    await snapshotWithAction(0);
    const callerEvents = page.locator('ol.events li[data-type="client"]', { hasText: caller });
    const metricsEvents = page.locator('ol.events li[data-type="notification"]', { hasText: 'relais/metrics' });
    await page.getByLabel('Show internal').check();
    await callerEvents.filter({ has: page.locator('[data-status="forgotten"]') }).waitFor({ timeout: 15_000 });
    await metricsEvents.first().waitFor({ timeout: 15_000 });
    await page.getByLabel('Show internal').uncheck();
    assert.equal(await callerEvents.count(), 0, "the short-lived client's alive and forgotten are hidden");
    assert.equal(await metricsEvents.count(), 0, 'the metrics are hidden');
    assert.ok((await page.locator('ol.events li[data-type="request.finished"]', { hasText: caller }).count()) >= 1, 'its request stays');
    const hint = page.getByTestId('hidden-count');
    await hint.waitFor({ timeout: 15_000 });
    // Frozen while counted: live events would move the figures between two readings.
    await page.getByRole('button', { name: 'Pause' }).click();
    const pager = page.getByRole('navigation', { name: 'event pages' });
    const total = async () => Number(/\((\d+) events\)/.exec(await pager.innerText())![1]);
    const hidden = Number(/^(\d+) internal events? hidden/.exec(await hint.innerText())![1]);
    const shown = await total();
    assert.ok(hidden > 0, 'some internal events are hidden');
    await screenshot(page, 'views-events-noise-hidden');
    await page.getByLabel('Show internal').check();
    assert.equal(await total(), shown + hidden, 'the pages count the internal events once shown');
    assert.equal(await hint.count(), 0, 'nothing is said hidden');
    await page.getByLabel('Category').fill('relais/metrics');
    await metricsEvents.first().waitFor({ timeout: 5_000 });
    await screenshot(page, 'views-events-internal-shown');
    await page.getByLabel('Category').fill('');
    await page.getByLabel('Show internal').uncheck();
    await page.getByRole('button', { name: /^Resume/ }).click();
  });

  it('metrics - relais start down for 35 s: the charts break the line over the outage, on a time axis of clock times', async () => {
    assert.equal((await runCli(['call', action, '{}'], stack.env)).code, 0);
    const before = await snapshotWithAction(0);
    await stack.restart(OUTAGE_MS);
    await callOnceServedAgain();
    const afterOutage = await snapshotWithAction(before.until + OUTAGE_MS);
    // One more snapshot after it: the line after the outage has two points at least.
    await new Promise<void>((resolve) => {
      const check = () => snapshots.some((snapshot) => snapshot.until > afterOutage.until) && (waiters.delete(check), resolve());
      waiters.add(check);
      check();
    });
    // A page opened now reads the hour back from the router's event stream, kept across the restart.
    const metrics = await openPage(browser, `${stack.pageUrl}#/metrics`);
    try {
      await metrics.getByTestId('metrics-span').filter({ hasText: /read back from the router/ }).waitFor({ timeout: 15_000 });
      const chart = metrics.locator(`section.metrics-action[data-action="${action}"] figure.chart`).filter({ hasText: 'Request rate' });
      await chart.waitFor({ timeout: 10_000 });
      const drawn = await chart.locator('svg').evaluate((svg) => ({
        ticks: [...svg.querySelectorAll('text.time-tick')].map((text) => ({ label: text.textContent ?? '', x: Number(text.getAttribute('x')) })),
        runs: [...svg.querySelectorAll('polyline, circle')].map((shape) =>
          shape.tagName === 'circle' ? [Number(shape.getAttribute('cx'))] : (shape.getAttribute('points') ?? '').split(' ').map((point: string) => Number(point.split(',')[0])),
        ),
        label: svg.getAttribute('aria-label') ?? '',
      }));
      await screenshot(metrics, 'views-metrics-gap');
      // The time axis: clock times, in order, evenly spread from the first snapshot to the last.
      assert.ok(drawn.ticks.length >= 2, JSON.stringify(drawn.ticks));
      assert.ok(drawn.ticks.every((tick) => /^\d\d:\d\d:\d\d$/.test(tick.label)), `time labels: ${drawn.ticks.map((tick) => tick.label).join(', ')}`);
      const seconds = axisSecondsOf(drawn.ticks.map((tick) => tick.label));
      assert.ok(seconds.every((second, at) => at === 0 || second > seconds[at - 1]!), `in order: ${drawn.ticks.map((tick) => tick.label).join(', ')}`);
      const [first, last] = [drawn.ticks[0]!, drawn.ticks.at(-1)!];
      const spanSeconds = seconds.at(-1)! - seconds[0]!;
      assert.ok(spanSeconds >= OUTAGE_MS / 1000 && spanSeconds < 3600, `the axis spans ${spanSeconds} s, the outage alone was ${OUTAGE_MS / 1000} s, the test a few minutes`);
      const secondsAt = (x: number) => ((x - first.x) / (last.x - first.x)) * spanSeconds;
      // Two runs at least, and none of them spans the outage: inside a run, points are a snapshot (10 s) apart.
      assert.ok(drawn.runs.length >= 2, `the line is broken: ${drawn.runs.length} run(s); ${drawn.label}`);
      assert.match(drawn.label, /\d+ gaps?/);
      for (const run of drawn.runs) for (let at = 1; at < run.length; at++) assert.ok(secondsAt(run[at]!) - secondsAt(run[at - 1]!) < 25, `a line joins points ${Math.round(secondsAt(run[at]!) - secondsAt(run[at - 1]!))} s apart`);
      const sorted = drawn.runs.map((run) => [Math.min(...run), Math.max(...run)] as const).sort((a, b) => a[0] - b[0]);
      const widest = Math.max(...sorted.slice(1).map(([start], at) => secondsAt(start) - secondsAt(sorted[at]![1])));
      assert.ok(widest >= (OUTAGE_MS - 10_000) / 1000, `the widest break is ${Math.round(widest)} s, for an outage of ${OUTAGE_MS / 1000} s`);
    } finally {
      await metrics.close();
    }
  });
});

describe('the history view with security on: a request killed by an administrator', { skip: gate.skip, timeout: 180_000 }, () => {
  let stack: Stack;
  let handler: RunningCli;
  let browser: Browser;
  let page: Page;
  const pid = process.pid;
  const admin = `views-admin-${pid}`;
  const requester = `views-carol-${pid}`;
  const service = `views-svc-${pid}`;

  before(async () => {
    stack = await startStack('views-secure', { [admin]: ['admin'], [requester]: ['client'], [service]: ['service'] }, { [service]: ['demo/#'] });
    handler = await startProgressHandler(stack, service, 'demo/slow', 'cat >/dev/null; echo "{\\"progress\\": 0.5}"; sleep 60', { RELAIS_TOKEN: stack.tokens[service]!, RELAIS_LOG_LEVEL: 'warn' });
    browser = await launchChromium();
    page = await openPage(browser, `${stack.pageUrl}#/history`);
    await logIn(page, stack, admin);
  });

  after(async () => {
    await browser?.close();
    await handler?.stop();
    await stack?.stop();
  });

  it('history - killed with relais kill by an administrator: "killed by <admin>", its requester and handler, and how long it ran', async () => {
    const as = (identity: string) => ({ ...stack.env, RELAIS_TOKEN: stack.tokens[identity]! });
    const sent = await runCli(['call', 'demo/slow', '{}', '--detach', '--timeout', '120', '--id', requester], as(requester));
    assert.equal(sent.code, 0, sent.stderr);
    const token = sent.stdout.trim();
    const started = Date.now();
    // It runs a while before it is killed: the duration says so.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const killed = await runCli(['kill', token, '--id', admin], as(admin));
    assert.equal(killed.code, 0, killed.stderr);
    const ranForMs = Date.now() - started;
    await page.getByRole('link', { name: 'History' }).click();
    await page.getByRole('button', { name: 'Search' }).click();
    const row = page.locator(`table.history tbody tr[data-token="${token}"]`);
    await row.waitFor({ timeout: 15_000 });
    assert.equal(await row.getAttribute('data-outcome'), 'killed');
    // A one-shot command with a token connects as a session of its identity (protocol §2.1): the history names that client.
    assert.match(await row.locator('.outcome').innerText(), new RegExp(`^killed by ${admin}(~cli-[\\w-]+)?$`));
    assert.match(await row.locator('.requester').innerText(), new RegExp(`^${requester}(~cli-[\\w-]+)?$`));
    assert.equal(await row.locator('.handler').innerText(), service);
    const duration = await row.locator('.duration').innerText();
    const match = /^(\d+(?:\.\d+)?) s$/.exec(duration);
    assert.ok(match, `a duration in seconds: ${duration}`);
    assert.ok(Number(match[1]) >= 1.5 && Number(match[1]) * 1000 <= ranForMs + 1000, `ran ${duration}, between the sleep and ${ranForMs} ms`);
    await screenshot(page, 'views-history-killed');
  });
});
