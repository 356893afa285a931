/**
 * What the page's end-to-end tests share: `relais start` serving the page, a real agent and a
 * `relais serve` handler beside it, and Debian's chromium driven by playwright-core.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { runCli, startCli, startRelais, type RunningCli } from '../testkit/cli.js';

export const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
export const ARTIFACTS = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../test-artifacts/web');

/**
 * Whether the browser tests run. When chromium is absent: a loud line and a skip, or a failure
 * when RELAIS_REQUIRE_PEERS=1 (CI installs it), as test/testkit's peerGate does for mosquitto.
 */
export function chromiumGate(): { skip: string | false } {
  if (fs.existsSync(CHROMIUM)) return { skip: false };
  if (process.env.RELAIS_REQUIRE_PEERS === '1') throw new Error(`${CHROMIUM} is required (RELAIS_REQUIRE_PEERS=1) for the page's browser tests but is not installed (apt-get install chromium)`);
  const line = `!!! SKIPPING the page's browser tests: ${CHROMIUM} is not installed (apt-get install chromium) !!!`;
  console.error(`\n${'!'.repeat(line.length)}\n${line}\n${'!'.repeat(line.length)}\n`);
  return { skip: `${CHROMIUM} not installed` };
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
}

/** A new page of `browser` opened at `url`; what it throws is written on the test's stderr. */
export async function openPage(browser: Browser, url: string, viewport = { width: 1280, height: 900 }): Promise<Page> {
  const page = await browser.newPage({ viewport });
  page.on('pageerror', (error) => console.error(`page error: ${error.message}`));
  await page.goto(url);
  return page;
}

export function tempDir(name: string): string {
  const base = path.join(os.tmpdir(), 'webpage-helper');
  fs.mkdirSync(base, { recursive: true });
  return fs.mkdtempSync(path.join(base, `${name}-`));
}

export interface Stack {
  readonly broker: RunningCli;
  /** The page's address, as `relais start` printed it (another one after `restart`). */
  readonly pageUrl: string;
  /** For the CLI clients of the test: RELAIS_BROKER. */
  env: Record<string, string>;
  /** With security on: each identity's token. */
  tokens: Record<string, string>;
  dir: string;
  /** `relais start` stopped for `awayMs`, then started again on the same MQTT port with the same data (RelaisStart.restart). */
  restart(awayMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * `relais start` on free ports, serving the page (`--web-port 0`), its data in a fresh folder.
 * With `identities` (name → roles), security is on (`--secure`, the default policy) and
 * `tokens` holds each identity's token, as `relais identity add` printed it; `serves` names
 * what each service serves (`relais identity add --serves`).
 */
export async function startStack(name: string, identities?: Record<string, string[]>, serves: Record<string, string[]> = {}): Promise<Stack> {
  const dir = tempDir(name);
  const dataDir = path.join(dir, 'data');
  const tokens: Record<string, string> = {};
  for (const [identity, roles] of Object.entries(identities ?? {})) {
    const added = await runCli(['identity', 'add', identity, '--role', ...roles, ...(serves[identity] ? ['--serves', ...serves[identity]] : []), '--data-dir', dataDir]);
    const token = /^relais_\S+$/m.exec(added.stdout)?.[0];
    if (added.code !== 0 || !token) throw new Error(`relais identity add ${identity} failed: ${added.stderr}`);
    tokens[identity] = token;
  }
  const relais = await startRelais(['--data-dir', dataDir, ...(identities ? ['--secure'] : [])]);
  return {
    get broker() {
      return relais.cli;
    },
    get pageUrl() {
      return relais.webUrl!;
    },
    env: relais.env,
    tokens,
    dir,
    restart: (awayMs) => relais.restart(awayMs),
    async stop() {
      await relais.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** test/web-page/contract-handler.ts in its own process: `demo/resize` with a contract (protocol §7.6). */
export async function startContractHandler(stack: Stack, id: string, token?: string, info?: Record<string, unknown>): Promise<{ stop(): Promise<void> }> {
  const script = path.join(path.dirname(new URL(import.meta.url).pathname), 'contract-handler.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', script, stack.env.RELAIS_BROKER!, id, ...(info ? [JSON.stringify(info)] : [])], {
    env: { ...process.env, ...(token && { RELAIS_TOKEN: token }) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let seen = '';
    child.stdout!.on('data', (chunk: Buffer) => (seen += chunk) && seen.includes('READY') && resolve());
    void exited.then(() => reject(new Error(`the contract handler exited before READY: ${seen}`)));
  });
  return {
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Logs in on the page's form as `identity` (a stack with security on). */
export async function logIn(page: Page, stack: Stack, identity: string): Promise<void> {
  await page.getByLabel('Identity').fill(identity);
  await page.getByLabel('Token').fill(stack.tokens[identity]!);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('[data-testid="connection"]', { hasText: `connected as ${identity}` }).waitFor({ timeout: 15_000 });
}

/** `relais agent` allowed to run /bin/sh command lines (docs/agent.md), started and serving. */
export async function startAgent(stack: Stack, id: string): Promise<RunningCli> {
  const config = { services: { command: { ruleSet: 'web-page-tests', killGrace: 0.5, rules: [{ name: 'sh', program: '/bin/sh', args: ['-c', { pattern: '.*' }] }] } } };
  const file = path.join(stack.dir, `${id}.json`);
  fs.writeFileSync(file, JSON.stringify(config));
  const agent = startCli(['agent', '--id', id, '--config', file], { ...stack.env, RELAIS_LOG_LEVEL: 'info' });
  await agent.waitFor(/agent \S+ serving/);
  return agent;
}

/**
 * `relais serve <action>` running a shell script that reports progress as JSON lines
 * (src/cli/serve.ts): `{"progress": f}` steps, then its result.
 */
export async function startProgressHandler(stack: Stack, id: string, action: string, script: string, env: Record<string, string> = {}): Promise<RunningCli> {
  const handler = startCli(['serve', action, '--id', id, '--', '/bin/sh', '-c', script], { ...stack.env, ...env });
  await handler.waitFor(/serving \S+ with/);
  return handler;
}

export async function screenshot(page: Page, scenario: string): Promise<void> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${scenario}.png`), fullPage: true });
}
