/**
 * The page's Sites view and the SITE column of its clients view (protocol §13.4), in chromium,
 * live as links go up and down. `relais start` serves the page; the sites' retained topics are
 * published by a test peer that STANDS FOR A LINK (the real link is tested by the three-host
 * test), and the site's client is a plain client on the same broker, as the link makes it
 * appear at the central.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { connect, siteClientsTopic, siteStatusTopic, type Bus } from '../../src/index.js';
import { notificationMessage } from '../../src/protocol/messages.js';
import { testLogger } from '../testkit/index.js';
import { chromiumGate, launchChromium, openPage, screenshot, startStack, type Stack } from './page-kit.js';

const gate = chromiumGate();

describe('the page and sites in chromium', { skip: gate.skip, timeout: 180_000 }, () => {
  let stack: Stack;
  let link: Bus;
  let member: Bus;
  let browser: Browser;
  let page: Page;
  const memberId = `agent-p1-${process.pid}`;
  const since = Date.now() - 90_000;

  const publish = (topic: string, payload: unknown) => link.publish(topic, notificationMessage({ source: link.id, payload, priority: 'normal' }), { retain: true });

  before(async () => {
    stack = await startStack('sites');
    link = await connect({ id: `link-standin-${process.pid}`, broker: stack.env.RELAIS_BROKER!, logger: testLogger });
    member = await connect({ id: memberId, broker: stack.env.RELAIS_BROKER!, logger: testLogger });
    await member.handle('demo/sites/page', () => 'ran');
    publish(siteClientsTopic('poller-1'), { site: 'poller-1', clients: [memberId, 'site:poller-1'] });
    publish(siteStatusTopic('poller-1'), { site: 'poller-1', status: 'down', since, mode: 'pull' });
    publish(siteClientsTopic('poller-2'), { site: 'poller-2', clients: ['agent-q', 'site:poller-2'], refused: [{ id: 'web-1', reason: 'a client of the central has this id' }] });
    publish(siteStatusTopic('poller-2'), { site: 'poller-2', status: 'up', since, mode: 'push', rttMs: 41.6 });
    browser = await launchChromium();
    page = await openPage(browser, `${stack.pageUrl}#/sites`, { width: 1100, height: 800 });
  });

  after(async () => {
    await browser?.close();
    await Promise.all([link?.close(), member?.close()]);
    await stack?.stop();
  });

  it('sites - the view lists each link with its status, since when, mode, round trip and clients, live', async () => {
    const down = page.locator('tr[data-site="poller-1"][data-status="down"]');
    await down.waitFor({ timeout: 15_000 });
    assert.match(await down.locator('[data-label="Since"]').innerText(), /1 min ago/);
    assert.equal(await down.locator('[data-label="Status"]').innerText(), 'down');
    assert.equal(await down.locator('[data-label="Mode"]').innerText(), 'pull');
    assert.equal(await down.locator('[data-label="Clients"]').innerText(), '2');
    const up = page.locator('tr[data-site="poller-2"][data-status="up"]');
    assert.equal(await up.locator('[data-label="Round trip"]').innerText(), '42 ms');
    assert.equal(await up.locator('[data-label="Mode"]').innerText(), 'push');
    assert.equal(await up.locator('[data-label="Clients"]').innerText(), '2 (1 refused)');
    await screenshot(page, 'sites-down');

    // The link comes back: the row turns up without a reload.
    publish(siteStatusTopic('poller-1'), { site: 'poller-1', status: 'up', since: Date.now(), mode: 'pull', rttMs: 12 });
    const back = page.locator('tr[data-site="poller-1"][data-status="up"]');
    await back.waitFor({ timeout: 15_000 });
    assert.equal(await back.locator('[data-label="Round trip"]').innerText(), '12 ms');
  });

  it("clients - the SITE column names a site's client, from the rosters", async () => {
    await page.getByRole('navigation').getByRole('link', { name: 'Clients' }).click();
    const row = page.locator(`tr[data-client="${memberId}"]`);
    await row.waitFor({ timeout: 15_000 });
    assert.equal(await row.locator('[data-label="Site"]').innerText(), 'poller-1');
    const own = page.locator(`tr[data-client="${link.id}"]`);
    await own.waitFor({ timeout: 15_000 });
    assert.equal(await own.locator('[data-label="Site"]').innerText(), '—');
    await screenshot(page, 'clients-site-column');
  });
});
