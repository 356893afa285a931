/**
 * Which modules a real `relais` process loads: evidence, not timing, for what a command pulls
 * in at start-up. A module loader hook (node:module register(), in the child) appends the URL
 * of every module the ES module loader loads to a file: our own files, the packages imported
 * from them (a CommonJS package's entry file included), and the chunks of the bundle.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cliEnvironment, collectRun, RELAIS_BIN, type CliResult } from './cli.js';

const HOOKS = `
import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  appendFileSync(process.env.RELAIS_TEST_MODULE_LOG, url + '\\n');
  return next(url, context);
}`;
const REGISTER = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOKS)}`)});`;

export interface LoadedModules extends CliResult {
  /** Every module URL the process loaded, in order. */
  modules: string[];
}

/**
 * Runs `relais ...args` (or another entry file, e.g. dist/cli/main.js) to completion and says
 * which modules it loaded.
 */
export function runCliLoggingModules(args: string[], env: Record<string, string> = {}, entry = RELAIS_BIN, timeout?: number): Promise<LoadedModules> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-modules-'));
  const log = path.join(dir, 'modules.txt');
  fs.writeFileSync(log, '');
  const child = spawn(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(REGISTER)}`, entry, ...args], {
    env: cliEnvironment({ ...env, RELAIS_TEST_MODULE_LOG: log }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return collectRun(child, `relais ${args.join(' ')}`, timeout)
    .then((result) => ({ ...result, modules: fs.readFileSync(log, 'utf8').split('\n').filter(Boolean) }))
    .finally(() => fs.rmSync(dir, { recursive: true, force: true }));
}
