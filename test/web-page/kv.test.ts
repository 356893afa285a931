/**
 * The page's key-value view (docs/kv.md "On the page") in chromium, with security on: the
 * buckets; a bucket's keys live as another client writes; an entry edited with compare-and-set
 * (a change made meanwhile refused and said, the editor's text kept), deleted, its history; a
 * client's configuration as a form drawn from the schema it announced (a real plugin's
 * bus.config), the router's refusal shown beside the field it names, the saved value pushed to
 * the running plugin; an observer's write refused. `relais start --secure` serves the page; the
 * other writer is a library client of another admin identity. A screenshot per scenario in
 * test-artifacts/web/.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { z } from 'zod';
import { connect, type Bus, type ClientConfig } from '../../src/index.js';
import { KV_ACTIONS, type KvEntry, type KvWritten } from '../../src/protocol/kv.js';
import { testLogger, within } from '../testkit/index.js';
import { chromiumGate, launchChromium, logIn, screenshot, startStack, type Stack } from './page-kit.js';

const gate = chromiumGate();

/** What a plugin declares with bus.config(schema): its JSON Schema is what the page draws. */
const pluginConfig = z.object({
  level: z.number().int().min(1).max(5).default(3).describe('how much it says, 1 to 5'),
  name: z.string().default('kitchen'),
  verbose: z.boolean().default(false),
  mode: z.enum(['eco', 'comfort']).default('eco'),
});

describe('the key-value view in chromium', { skip: gate.skip, timeout: 240_000 }, () => {
  let stack: Stack;
  let writer: Bus;
  let plugin: Bus;
  let pluginSettings: ClientConfig<z.output<typeof pluginConfig>>;
  let browser: Browser;
  let page: Page;
  const pluginId = `plugin-${process.pid}`;

  const put = (bucket: string, key: string, value: unknown) => writer.request<KvWritten>(KV_ACTIONS.put, { bucket, key, value });
  const get = (bucket: string, key: string) => writer.request<KvEntry>(KV_ACTIONS.get, { bucket, key });

  before(async () => {
    stack = await startStack('kv', { root: ['admin'], ops: ['admin'], olga: ['observer'], [pluginId]: ['client'] });
    // Another admin than the page's: one connection per identity.
    writer = await connect({ id: 'ops', broker: stack.env.RELAIS_BROKER!, username: 'ops', password: stack.tokens.ops!, logger: testLogger });
    await writer.waitForHandler(KV_ACTIONS.put, { timeout: 15_000 });
    await put('settings', 'theme', { dark: true, accent: 'blue' });
    await put('settings', 'rooms/kitchen', { lights: 3 });
    // A plugin as one is written: it declares its configuration, which announces the schema and writes the defaults.
    plugin = await connect({ id: pluginId, broker: stack.env.RELAIS_BROKER!, username: pluginId, password: stack.tokens[pluginId]!, logger: testLogger });
    pluginSettings = await plugin.config(pluginConfig, { defaults: { level: 3, name: 'kitchen', verbose: false, mode: 'eco' } });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    page.on('pageerror', (error) => console.error(`page error: ${error.message}`));
    await page.goto(stack.pageUrl);
    await logIn(page, stack, 'root');
  });

  after(async () => {
    await browser?.close();
    pluginSettings?.close();
    await Promise.all([writer?.close(), plugin?.close()]);
    await stack?.stop();
  });

  it('buckets - the view lists each bucket with its keys and last revision', async () => {
    await page.getByRole('navigation').getByRole('link', { name: 'Store' }).click();
    const row = page.locator('tr[data-bucket="settings"]');
    await row.waitFor({ timeout: 15_000 });
    assert.equal(await row.locator('[data-label="Keys"]').innerText(), '2');
    assert.equal(await row.locator('[data-label="Revision"]').innerText(), '2');
    await page.locator('tr[data-bucket="config"]').waitFor();
    await screenshot(page, 'kv-buckets');
  });

  it('bucket - its keys with their values, and a write by another client appears live with its revision', async () => {
    await page.locator('tr[data-bucket="settings"] a').click();
    await page.locator('tr[data-key="theme"]').waitFor({ timeout: 15_000 });
    await page.locator('[data-testid="watch-state"]', { hasText: 'up to date at revision 2' }).waitFor({ timeout: 15_000 });
    assert.match(await page.locator('tr[data-key="theme"] [data-label="Value"]').innerText(), /"dark":true/);
    const { revision } = await put('settings', 'rooms/bath', { lights: 1 });
    const fresh = page.locator(`tr[data-key="rooms/bath"][data-revision="${revision}"]`);
    await fresh.waitFor({ timeout: 15_000 });
    await page.locator(`.kv-changes li[data-revision="${revision}"]`).waitFor();
    await screenshot(page, 'kv-bucket-live');
  });

  it('entry - edited and saved at the revision shown; a change made meanwhile refuses the save, says the revision, keeps the text', async () => {
    await page.locator('tr[data-key="theme"] a').click();
    await page.locator('[data-testid="entry-revision"]', { hasText: '1' }).waitFor({ timeout: 15_000 });
    const editor = page.locator('.kv-edit textarea');
    await editor.fill('{"dark": false, "accent": "green"}');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText(/^Saved: revision \d+\.$/).waitFor({ timeout: 15_000 });
    const saved = await get('settings', 'theme');
    assert.deepEqual(saved.value, { dark: false, accent: 'green' });

    // Someone else writes while the editor holds unsaved text: the page shows the new revision, the text stays.
    await editor.fill('{"dark": true, "accent": "mine"}');
    const theirs = await put('settings', 'theme', { dark: true, accent: 'theirs' });
    await page.locator('[data-testid="entry-revision"]', { hasText: String(theirs.revision) }).waitFor({ timeout: 15_000 });
    assert.equal(await editor.inputValue(), '{"dark": true, "accent": "mine"}');
    await page.getByRole('button', { name: 'Save' }).click();
    const conflict = page.locator('[data-testid="conflict"]');
    await conflict.waitFor({ timeout: 15_000 });
    assert.match(await conflict.innerText(), new RegExp(`changed meanwhile \\(it is now at revision ${theirs.revision}; you edited revision ${saved.revision}\\)`));
    assert.deepEqual((await get('settings', 'theme')).value, { dark: true, accent: 'theirs' }, 'their value was not overwritten');
    await screenshot(page, 'kv-entry-conflict');
    await conflict.getByRole('button', { name: 'Load the latest' }).click();
    await page.waitForFunction("document.querySelector('.kv-edit textarea')?.value.includes('theirs')", undefined, { timeout: 15_000 });
  });

  it('entry - its history lists each revision; delete (confirmed) writes a tombstone the history keeps', async () => {
    const rows = page.locator('table.kv-history tbody tr');
    await page.waitForFunction("document.querySelectorAll('table.kv-history tbody tr').length >= 3", undefined, { timeout: 15_000 });
    assert.equal(await rows.first().locator('[data-label="Value"]').innerText(), '{"dark":true,"accent":"theirs"}');
    await page.getByRole('button', { name: 'Delete…' }).click();
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    await page.getByText(/^Deleted at revision \d+\.$/).waitFor({ timeout: 15_000 });
    await page.locator('[data-testid="entry-absent"]').waitFor();
    await page.locator('table.kv-history tbody tr[data-operation="delete"]').first().waitFor({ timeout: 15_000 });
    await screenshot(page, 'kv-entry-deleted');
  });

  it("config - the client's configuration as a form from its announced schema; a value the schema refuses is shown beside its field, a good one saved and pushed to the plugin", async () => {
    await page.goto(`${stack.pageUrl}#/kv/config/${pluginId}`);
    const form = page.getByRole('form', { name: 'Configuration' });
    await form.waitFor({ timeout: 15_000 });
    const level = form.getByLabel('level');
    assert.equal(await level.inputValue(), '3');
    assert.equal(await form.getByLabel('mode').inputValue(), '"eco"');
    await level.fill('9');
    await form.getByRole('button', { name: 'Save configuration' }).click();
    const issue = page.locator('.config-field[data-field="level"] [role="alert"]');
    await issue.waitFor({ timeout: 15_000 });
    assert.match(await issue.innerText(), /5/);
    assert.equal(await level.getAttribute('aria-invalid'), 'true');
    assert.deepEqual((await get('config', pluginId)).value, { level: 3, name: 'kitchen', verbose: false, mode: 'eco' }, 'the refused value was not written');
    await screenshot(page, 'kv-config-invalid');
    await level.fill('4');
    await form.getByLabel('verbose').check();
    await form.getByLabel('mode').selectOption('"comfort"');
    const pushed = new Promise<unknown>((resolve) => pluginSettings.onChange((value) => resolve(value)));
    await form.getByRole('button', { name: 'Save configuration' }).click();
    await page.getByText(/^Saved: revision \d+\.$/).waitFor({ timeout: 15_000 });
    assert.deepEqual((await get('config', pluginId)).value, { level: 4, name: 'kitchen', verbose: true, mode: 'comfort' });
    // The running plugin is told, without asking.
    assert.deepEqual(await within(pushed, 15_000, 'the change pushed to the plugin'), { level: 4, name: 'kitchen', verbose: true, mode: 'comfort' });
    await screenshot(page, 'kv-config-form');
  });

  it('observer - reads a shared entry; its save is refused with the reason, nothing written', async () => {
    const observer = await browser.newPage({ viewport: { width: 1000, height: 800 } });
    try {
      await observer.goto(stack.pageUrl);
      await logIn(observer, stack, 'olga');
      await observer.goto(`${stack.pageUrl}#/kv/settings/rooms%2Fkitchen`);
      await observer.locator('[data-testid="entry-value"]', { hasText: '"lights": 3' }).waitFor({ timeout: 15_000 });
      await observer.locator('.kv-edit textarea').fill('{"lights": 0}');
      await observer.getByRole('button', { name: 'Save' }).click();
      await observer.getByText(/^Not saved: Not allowed/).waitFor({ timeout: 15_000 });
      assert.deepEqual((await get('settings', 'rooms/kitchen')).value, { lights: 3 });
      await screenshot(observer, 'kv-observer-refused');
    } finally {
      await observer.close();
    }
  });
});
