/**
 * Runs test files with the machine saturated (`npm run test:loaded`): starts the busy
 * processes of load.ts, runs `node --test` on the files given, stops the load, and exits
 * with the tests' exit code.
 *   node --import tsx test/testkit/run-loaded.ts [--load N] [--concurrency C] <test files...>
 * --load: busy processes (default 2 × cores); --concurrency: test files run at once (default 1).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { defaultLoadSize, startLoad } from './load.js';

const { values: flags, positionals: files } = parseArgs({
  allowPositionals: true,
  options: {
    load: { type: 'string' },
    concurrency: { type: 'string', default: '1' },
  },
});
const size = flags.load === undefined ? defaultLoadSize() : Number(flags.load);
if (!Number.isInteger(size) || size < 0 || files.length === 0) {
  process.stderr.write('usage: run-loaded.ts [--load N] [--concurrency C] <test files...>\n');
  process.exit(2);
}

const load = startLoad(size);
process.stdout.write(`# under load: ${size} busy processes (pids ${load.pids.join(' ')})\n`);
const tests = spawn(process.execPath, ['--import', 'tsx', '--import', './test/testkit/end-file-after-tests.ts', '--test', '--test-reporter=spec', `--test-concurrency=${flags.concurrency}`, ...files], {
  stdio: 'inherit',
  env: { ...process.env, RELAIS_TEST_LOAD: String(size) },
});
// Ctrl-C reaches the tests through the terminal; the load is stopped below once they end.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => tests.kill('SIGTERM'));
const [code, signal] = (await once(tests, 'exit')) as [number | null, NodeJS.Signals | null];
await load.stop();
process.exit(code ?? (signal ? 1 : 0));
