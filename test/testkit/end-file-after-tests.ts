/**
 * Preloaded into every test file's process (`--import`, package.json and run-loaded.ts): once
 * the file's tests have ended, the process exits within 10 s even if something it opened still
 * runs. A client that a failed test left reconnecting for ever would otherwise hold the file, and
 * CI, until its time limit.
 *
 * Node's `--test-force-exit` did that, but it exits before the file's last results have reached
 * the runner, which then counts fewer tests (and none of the failures among them) and exits 0
 * (nodejs/node, "test_runner: --test-force-exit with concurrency silently loses test verdicts").
 * Seen here: a suite run on Node 20 reported 1,667 tests of 1,678, two suites of one file
 * missing; 3,181 of 3,200 trivial tests in one of 5 runs. This waits instead, after the tests,
 * for the results to be written: 3,200 of 3,200 in 11 runs, Node 20 and 24.
 */
import { after } from 'node:test';

const GRACE_MS = 10_000;

// Only in a test file's own process: the runner that spawns them has no tests of its own.
if (process.env.NODE_TEST_CONTEXT) {
  after(() => {
    // Unref'd: a file whose process empties its event loop ends at once, as without it.
    setTimeout(() => process.exit(), GRACE_MS).unref();
  });
}
