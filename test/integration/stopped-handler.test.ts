/**
 * A handler process frozen with SIGSTOP while requests are in flight to it and to a second
 * provider (protocol §4.7): its Last Will cannot fire for 1.5 × keep-alive, so only the
 * missing acknowledgement tells. Every request ends; those it had not taken are answered by
 * the other one; when it wakes up it runs none of what was moved; nothing runs twice.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { setup, uniqueId, waitFor, type Kit } from '../testkit/index.js';

const FIXTURE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/handler-process.ts');

interface HandlerProcess {
  id: string;
  child: ChildProcess;
  /** Tokens it started, in order (from its `RUN` lines). */
  runs: string[];
  /** Emits `run` for each. */
  events: EventEmitter;
}

function startHandler(url: string, workMs: number): Promise<HandlerProcess> {
  const id = uniqueId('worker');
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, url, id, String(workMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const runs: string[] = [];
  const events = new EventEmitter();
  return new Promise((resolve, reject) => {
    let buffered = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        if (line === 'READY') resolve({ id, child, runs, events });
        else if (line.startsWith('RUN ')) {
          runs.push(line.split(' ')[2]!);
          events.emit('run');
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`handler ${id} exited (${code}) before it was ready`)));
  });
}

describe('stopped handler', { timeout: 90_000 }, () => {
  let kit: Kit;
  const processes: HandlerProcess[] = [];
  before(async () => {
    kit = await setup('aedes');
  });
  after(async () => {
    for (const { child } of processes) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
    await kit?.cleanup();
  });

  it('acks - SIGSTOP one of two handlers: every request ends, the ones it had not taken are answered by the other, none runs twice', async () => {
    const [frozen, healthy] = await Promise.all([startHandler(kit.broker.url, 300), startHandler(kit.broker.url, 300)]);
    processes.push(frozen!, healthy!);
    const client = await kit.connect(uniqueId('client'), { ackTimeout: 500 });
    await waitFor(() => (client.directory.providers('demo/work').size === 2 ? true : undefined), client.directory, 'change');
    const tokens: string[] = [];
    const send = (n: number) => {
      const token = `job-${n}`;
      tokens.push(token);
      return client.request<{ by: string }>('demo/work', { n }, { token, timeout: 4000 }).then(
        (answer) => ({ token, by: answer.by }),
        (error: Error) => ({ token, error: `${error.name}: ${error.message}` }),
      );
    };
    const before = Array.from({ length: 6 }, (_, n) => send(n));
    // Both have taken some when the first one freezes.
    await Promise.all([frozen!, healthy!].map((handler) => waitFor(() => (handler.runs.length > 0 ? true : undefined), handler.events, 'run')));
    frozen!.child.kill('SIGSTOP');
    const takenBeforeStop = new Set(frozen!.runs);
    const during = Array.from({ length: 20 }, (_, n) => send(100 + n));
    const outcomes = await Promise.all([...before, ...during]);
    // Woken up, it reads what waited in its socket: a marker answered after them proves it handled them all.
    frozen!.child.kill('SIGCONT');
    assert.deepEqual(await client.request('demo/work', { n: -1 }, { target: frozen!.id, token: 'marker', timeout: 10_000 }), { n: -1, by: frozen!.id });

    for (const outcome of outcomes) {
      if (takenBeforeStop.has(outcome.token)) continue; // it had it when it froze: that one waited for its time-out
      assert.equal('by' in outcome && outcome.by, healthy!.id, `${outcome.token}: ${JSON.stringify(outcome)}`);
    }
    assert.ok(outcomes.some((outcome) => outcome.token.startsWith('job-1') && 'by' in outcome), 'requests sent while it was frozen were answered');
    const everyRun = [...frozen!.runs, ...healthy!.runs];
    const counted = new Map<string, number>();
    for (const token of everyRun) counted.set(token, (counted.get(token) ?? 0) + 1);
    assert.deepEqual([...counted.entries()].filter(([, count]) => count > 1), [], 'no token ran twice');
    assert.deepEqual([...frozen!.runs].filter((token) => !takenBeforeStop.has(token) && token.startsWith('job-')), [], 'woken up, it ran nothing that had moved');
  });
});
