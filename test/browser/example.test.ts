/**
 * docs/browser.md's example, run as written: its code block is bundled with `relais/browser`
 * (esbuild, for the browser) and served on the origin of a real `relais start --secure`, where
 * Debian's chromium runs it against a real `relais serve` handler with progress, logged in as a
 * `client` identity the way the example says.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { build } from 'esbuild';
import type { Browser, Page } from 'playwright-core';
import { runCli, type RunningCli } from '../testkit/cli.js';
import { chromiumGate, launchChromium, screenshot, startProgressHandler, startStack, type Stack } from '../web-page/page-kit.js';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const STEPS_SCRIPT = 'cat >/dev/null; for p in 0.25 0.5 0.75 1; do echo "{\\"progress\\": $p}"; sleep 0.1; done; echo "{\\"installed\\": true}"';
const PAGE = '<!doctype html><meta charset="utf-8"><title>my UI</title><progress max="1" value="0"></progress><pre id="result"></pre><ol id="events"></ol>';

/** The first TypeScript block under `## Example` in docs/browser.md. */
function exampleCode(): string {
  const doc = readFileSync(path.join(ROOT, 'docs/browser.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Example'));
  const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(code, 'docs/browser.md has a ts block under ## Example');
  return code;
}

const gate = chromiumGate();

describe("docs/browser.md's example in chromium", { skip: gate.skip, timeout: 120_000 }, () => {
  let stack: Stack;
  let handler: RunningCli;
  let browser: Browser;
  let page: Page;
  let script: string;
  const problems: string[] = [];
  const consoleLines: string[] = [];
  /** What the page said, for a failure's message. */
  const said = (error: Error) => {
    throw new Error(`${error.message}\npage errors: ${problems.join('; ') || 'none'}\nconsole:\n${consoleLines.join('\n')}`);
  };

  before(async () => {
    stack = await startStack('browser-example', { 'ui-user': ['client'], 'ui-other': ['client'], 'ui-steps': ['service'] }, { 'ui-steps': ['demo/#'] });
    handler = await startProgressHandler(stack, 'ui-steps', 'demo/steps', STEPS_SCRIPT, { RELAIS_TOKEN: stack.tokens['ui-steps']! });
    const bundled = await build({
      stdin: { contents: exampleCode(), loader: 'ts', resolveDir: ROOT, sourcefile: 'docs/browser.md' },
      alias: { 'relais/browser': path.join(ROOT, 'src/browser.ts') },
      bundle: true, platform: 'browser', format: 'esm', target: 'es2022', write: false, logLevel: 'silent',
    });
    browser = await launchChromium();
    page = await browser.newPage();
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('console', (message) => consoleLines.push(message.text()));
    script = bundled.outputFiles[0]!.text;
    // What the example's login form would have kept.
    await page.addInitScript(`sessionStorage.setItem('login', ${JSON.stringify(JSON.stringify({ identity: 'ui-user', token: stack.tokens['ui-user'] }))})`);
  });

  after(async () => {
    await browser?.close();
    await handler?.stop();
    await stack?.stop();
  });

  it('example - logged in as its identity, a command shows its progress and result, then the event stream lists new events', async () => {
    // A document of the server's own origin, loaded from it (a page the browser sees come from
    // 127.0.0.1, so its /mqtt is the default broker and is not another network's), then the UI.
    await page.goto(`${stack.pageUrl}my-ui`);
    await page.setContent(PAGE);
    await page.addScriptTag({ type: 'module', content: script });
    await page.locator('#result', { hasText: '"installed":true' }).waitFor({ timeout: 20_000 }).catch(said);
    assert.equal(await page.locator('progress').evaluate((bar) => (bar as unknown as { value: number }).value), 1, 'the last progress step reached the bar');
    // The feed follows from now on: a command of someone else's shows up as it happens.
    const call = await runCli(['call', 'demo/steps', '{}', '--id', 'ui-other'], { ...stack.env, RELAIS_TOKEN: stack.tokens['ui-other']! });
    assert.equal(call.code, 0, call.stderr);
    await page.locator('#events li', { hasText: 'request.finished' }).first().waitFor({ timeout: 15_000 }).catch(said);
    const cursors = await page.locator('#events li').evaluateAll((items) => items.map((item) => Number(item.textContent!.split(' ')[0])));
    cursors.forEach((cursor, at) => at > 0 && assert.equal(cursor, cursors[at - 1]! + 1, `cursors follow each other: ${cursors.join(', ')}`));
    assert.deepEqual(problems, []);
    await screenshot(page, 'browser-example');
  });
});
