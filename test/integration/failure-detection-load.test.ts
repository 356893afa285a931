/**
 * Failure detection measured (docs/reliability.md "Failure detection"): a workload of
 * requests to two handler processes and to the router (in this process, with the broker, as
 * in the contract suites), none of which goes away. So every HandlerGoneError and every
 * NoHandlerError here is false, and every request must end. Run it alone, or under load with
 * `npm run test:loaded`; it prints its figures as a `# failure detection` line.
 *
 * Two passes: the default ackTimeout (2 s), and 100 ms, which a loaded machine overruns all the
 * time: there the detector suspects often, and still nobody may be declared gone.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HandlerGoneError, NoHandlerError, TimeoutError, type Bus } from '../../src/index.js';
import { startRouter, type Router } from '../../src/router/index.js';
import { eachLine } from '../testkit/broker-process.js';
import { recordingLogger, setup, testLogger, uniqueId, waitFor, type Kit } from '../testkit/index.js';

const FIXTURE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/handler-process.ts');
const REQUESTS = 400;
const IN_FLIGHT = 20;

interface Figures {
  sent: number;
  ended: number;
  answered: number;
  timedOut: number;
  falseGone: number;
  falseNoHandler: number;
  otherErrors: string[];
  p50: number;
  p99: number;
  max: number;
  suspicions: number;
  moved: number;
}

function startWorker(url: string): Promise<{ id: string; child: ChildProcess }> {
  const id = uniqueId('worker');
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, url, id, '20'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    eachLine(child.stdout!, (line) => line === 'READY' && resolve({ id, child }));
    child.once('exit', (code) => reject(new Error(`worker ${id} exited (${code}) before it was ready`)));
  });
}

function percentile(sorted: number[], fraction: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)]!;
}

describe('failure detection under load', { timeout: 600_000 }, () => {
  let kit: Kit;
  let dir: string;
  let router: Router;
  const workers: Array<{ id: string; child: ChildProcess }> = [];
  before(async () => {
    kit = await setup('aedes');
    dir = mkdtempSync(path.join(tmpdir(), 'relais-fd-load-'));
    router = await startRouter({ broker: kit.broker.url, database: path.join(dir, 'history.db'), id: uniqueId('router'), logger: testLogger });
    workers.push(...(await Promise.all([startWorker(kit.broker.url), startWorker(kit.broker.url)])));
  });
  after(async () => {
    for (const { child } of workers) child.kill('SIGTERM');
    await router?.close();
    await kit?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  async function workload(ackTimeout: number): Promise<Figures> {
    const { logger, records } = recordingLogger();
    const client: Bus = await kit.connect(uniqueId('client'), { ackTimeout, logger });
    for (const action of ['demo/work', 'relais/history/get']) await client.waitForHandler(action, { timeout: 30_000 });
    await waitFor(() => (client.directory.providers('demo/work').size === workers.length ? true : undefined), client.directory, 'change', 30_000);
    const figures: Figures = { sent: 0, ended: 0, answered: 0, timedOut: 0, falseGone: 0, falseNoHandler: 0, otherErrors: [], p50: 0, p99: 0, max: 0, suspicions: 0, moved: 0 };
    const latencies: number[] = [];
    /** Requests of three kinds in turn: to any worker, to one worker by name, to the router. */
    const one = async (n: number) => {
      const kind = n % 4;
      const started = performance.now();
      figures.sent += 1;
      try {
        if (kind === 0 || kind === 1) await client.request('demo/work', { n });
        else if (kind === 2) await client.request('demo/work', { n }, { target: workers[n % workers.length]!.id });
        else await client.request('relais/history/get', { action: 'demo/work', limit: 50 });
        figures.answered += 1;
        latencies.push(performance.now() - started);
      } catch (error) {
        if (error instanceof HandlerGoneError) figures.falseGone += 1;
        else if (error instanceof NoHandlerError) figures.falseNoHandler += 1;
        else if (error instanceof TimeoutError) figures.timedOut += 1;
        else figures.otherErrors.push(String(error));
      } finally {
        figures.ended += 1;
      }
    };
    let next = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < REQUESTS) await one(next++);
      }),
    );
    latencies.sort((a, b) => a - b);
    figures.p50 = percentile(latencies, 0.5);
    figures.p99 = percentile(latencies, 0.99);
    figures.max = latencies.at(-1) ?? NaN;
    figures.suspicions = records().filter((record) => / gave no answer within /.test(String(record.msg))).length;
    figures.moved = records().filter((record) => String(record.msg).startsWith('request sent to another handler')).length;
    await client.close();
    return figures;
  }

  function report(ackTimeout: number, figures: Figures): void {
    const load = process.env.RELAIS_TEST_LOAD ? `${process.env.RELAIS_TEST_LOAD} busy processes` : 'no added load';
    const ms = (value: number) => `${Math.round(value)} ms`;
    // A diagnostic line of the TAP output: docs/reliability.md quotes these.
    process.stdout.write(
      `failure detection (${load}, ackTimeout ${ackTimeout} ms): ${figures.ended}/${figures.sent} requests ended (${((100 * figures.ended) / figures.sent).toFixed(1)} %), ` +
        `${figures.answered} answered, ${figures.timedOut} timed out, false HandlerGoneError ${figures.falseGone}, false NoHandlerError ${figures.falseNoHandler}, ` +
        `other errors ${figures.otherErrors.length}; latency p50 ${ms(figures.p50)}, p99 ${ms(figures.p99)}, max ${ms(figures.max)}; suspicions ${figures.suspicions}, moved ${figures.moved}\n`,
    );
  }

  for (const ackTimeout of [2000, 100]) {
    it(`failure detection - ${REQUESTS} requests (any worker, a named worker, the router), ackTimeout ${ackTimeout} ms: all end, none is told its live handler is gone`, async () => {
      const figures = await workload(ackTimeout);
      report(ackTimeout, figures);
      assert.equal(figures.ended, figures.sent, 'every request ended');
      assert.equal(figures.falseGone, 0, 'no HandlerGoneError: every handler stayed alive');
      assert.equal(figures.falseNoHandler, 0, 'no NoHandlerError: every handler stayed in the directory');
      assert.deepEqual(figures.otherErrors, []);
      assert.equal(figures.answered, figures.sent, 'each answered within its 30 s time-out');
    });
  }
});
