/**
 * A handler process frozen with SIGSTOP while requests are in flight to it (protocol §4.7):
 * its Last Will cannot fire for 1.5 × keep-alive, so only the missing answer tells, and it
 * tells "suspected", not "gone". With a second provider, every request ends; those it had not
 * taken are answered by the other one; when it wakes up it runs none of what was moved;
 * nothing runs twice. Alone, or targeted, requests wait for it: its answer when it resumes,
 * TimeoutError when it does not in time, HandlerGoneError only once its will says it is gone.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HandlerGoneError, TimeoutError } from '../../src/index.js';
import { recordingLogger, setup, SUITE_TIMEOUT, uniqueId, waitFor, type Kit } from '../testkit/index.js';

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

describe('stopped handler', { timeout: SUITE_TIMEOUT }, () => {
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
    const { logger, records } = recordingLogger();
    const client = await kit.connect(uniqueId('client'), { ackTimeout: 500, logger });
    await waitFor(() => (client.directory.providers('demo/work').size === 2 ? true : undefined), client.directory, 'change');
    // Each request as the requester lived it: who acknowledged it, who answered, or how it failed.
    const acks = new EventEmitter();
    const ackedBy = new Map<string, string[]>();
    const send = async (n: number) => {
      const token = `job-${n}`;
      const acceptedBy: string[] = [];
      try {
        for await (const step of client.call('demo/work', { n }, { token, timeout: 4000 })) {
          if (step.kind === 'accepted') {
            acceptedBy.push(step.source);
            ackedBy.set(token, acceptedBy);
            acks.emit('accepted');
          }
          if (step.kind === 'final') return { token, acceptedBy, by: (step.payload as { by: string }).by };
        }
        throw new Error('no final step');
      } catch (error) {
        return { token, acceptedBy, error: `${(error as Error).name}: ${(error as Error).message}` };
      }
    };
    const before = Array.from({ length: 6 }, (_, n) => send(n));
    // Both have taken some when the first one freezes.
    await Promise.all([frozen!, healthy!].map((handler) => waitFor(() => (handler.runs.length > 0 ? true : undefined), handler.events, 'run')));
    // ...and every one of those six is acknowledged, so none is between a handler taking it and
    // acknowledging it. Frozen in that window (a few microseconds, wider on a loaded machine), a
    // command can run twice: the failure case protocol §1.3 documents, not the one tested here.
    await waitFor(() => (Array.from({ length: 6 }, (_, n) => `job-${n}`).every((token) => (ackedBy.get(token)?.length ?? 0) > 0) ? true : undefined), acks, 'accepted');
    frozen!.child.kill('SIGSTOP');
    // A burst: once the other has more pending than the frozen one, requests go to the frozen one too.
    const during = await Promise.all(Array.from({ length: 30 }, (_, n) => send(100 + n)));
    // Woken up while the commands moved away are still within their deadline: it must not run them.
    frozen!.child.kill('SIGCONT');
    const outcomes = [...(await Promise.all(before)), ...during];
    // It reads what waited in its socket: a marker answered after them proves it handled them all.
    assert.deepEqual(await client.request('demo/work', { n: -1 }, { target: frozen!.id, token: 'marker', timeout: 10_000 }), { n: -1, by: frozen!.id });
    // Its RUN lines come in order: once the marker's is read, so is every earlier one.
    await waitFor(() => (frozen!.runs.includes('marker') ? true : undefined), frozen!.events, 'run');

    const moved = records().filter((record) => String(record.msg).startsWith('request sent to another handler') && record.from === frozen!.id);
    assert.ok(moved.length > 0, 'some requests went to the frozen handler and were moved');
    const takenByFrozen = outcomes.filter((outcome) => outcome.acceptedBy.includes(frozen!.id) && !('by' in outcome));
    for (const outcome of outcomes) {
      // One it had acknowledged when it froze waited for it (and for its time-out if it is not done in time).
      if (takenByFrozen.includes(outcome)) {
        assert.match(outcome.error ?? '', /TimeoutError/, `${outcome.token}: ${JSON.stringify(outcome)}`);
        continue;
      }
      assert.equal('by' in outcome && outcome.by, 'by' in outcome && outcome.acceptedBy.includes(frozen!.id) ? frozen!.id : healthy!.id, `${outcome.token}: ${JSON.stringify(outcome)}`);
    }
    assert.ok(outcomes.filter((outcome) => outcome.token.startsWith('job-1') && 'by' in outcome && outcome.by === healthy!.id).length >= 10, 'requests sent while it was frozen were answered by the other');
    const counted = new Map<string, number>();
    for (const token of [...frozen!.runs, ...healthy!.runs]) counted.set(token, (counted.get(token) ?? 0) + 1);
    assert.deepEqual([...counted.entries()].filter(([, count]) => count > 1), [], 'no token ran twice');
    const movedAway = new Set(outcomes.filter((outcome) => 'by' in outcome && outcome.by === healthy!.id).map((outcome) => outcome.token));
    assert.deepEqual(frozen!.runs.filter((token) => movedAway.has(token)), [], 'woken up, it ran nothing the other had answered');
  });

  it('acks - SIGSTOP the only handler: suspected, not gone; requests wait for it and get its answers when it resumes, TimeoutError when it does not in time, HandlerGoneError only once its will arrives', async () => {
    // Alone: the handlers of the test before leave first.
    await Promise.all(processes.splice(0).map(({ child }) => {
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      return child.exitCode === null && child.signalCode === null ? once(child, 'exit') : undefined;
    }));
    const frozen = await startHandler(kit.broker.url, 50);
    processes.push(frozen);
    const { logger, records, events } = recordingLogger();
    const client = await kit.connect(uniqueId('client'), { ackTimeout: 200, reconnectGrace: 300, logger });
    await waitFor(() => (client.directory.providers('demo/work').size === 1 && client.directory.providers('demo/work').has(frozen.id) ? true : undefined), client.directory, 'change');
    assert.deepEqual(await client.request('demo/work', { n: 0 }, { target: frozen.id, timeout: 10_000 }), { n: 0, by: frozen.id });
    const suspicions = () => records().filter((record) => String(record.msg).startsWith(`handler ${frozen.id} gave no answer`)).length;
    const suspectedAgain = (before: number) => waitFor(() => (suspicions() > before ? true : undefined), events, 'line', 10_000);

    // Resumed within their time-out: targeted or not, the requests get its answers.
    frozen.child.kill('SIGSTOP');
    const resumed = [
      client.request('demo/work', { n: 1 }, { target: frozen.id, token: 'resumed-targeted', timeout: 20_000 }),
      client.request('demo/work', { n: 2 }, { token: 'resumed-any', timeout: 20_000 }),
    ];
    await suspectedAgain(0);
    frozen.child.kill('SIGCONT');
    assert.deepEqual(await Promise.all(resumed), [{ n: 1, by: frozen.id }, { n: 2, by: frozen.id }]);

    // Not resumed within their time-out: TimeoutError, and, resumed after, it runs none of them.
    frozen.child.kill('SIGSTOP');
    const late = await Promise.allSettled([
      client.request('demo/work', { n: 3 }, { target: frozen.id, token: 'late-targeted', timeout: 1500 }),
      client.request('demo/work', { n: 4 }, { token: 'late-any', timeout: 1500 }),
    ]);
    for (const outcome of late) assert.ok(outcome.status === 'rejected' && outcome.reason instanceof TimeoutError, String(outcome.status === 'rejected' ? outcome.reason : 'answered'));
    frozen.child.kill('SIGCONT');
    // A marker answered after them proves it read what waited in its socket (its RUN lines come in order).
    assert.deepEqual(await client.request('demo/work', { n: -1 }, { target: frozen.id, token: 'marker', timeout: 10_000 }), { n: -1, by: frozen.id });
    await waitFor(() => (frozen.runs.includes('marker') ? true : undefined), frozen.events, 'run');
    assert.deepEqual(frozen.runs.filter((token) => token.startsWith('late-')), [], 'past their deadline, it ran none of them');

    // Killed while frozen: its will says it is gone, and it does not come back within reconnectGrace.
    frozen.child.kill('SIGSTOP');
    const before = suspicions();
    const doomed = client.request('demo/work', { n: 5 }, { target: frozen.id, token: 'doomed', timeout: 30_000 });
    doomed.catch(() => {});
    await suspectedAgain(before);
    frozen.child.kill('SIGKILL');
    await assert.rejects(doomed, (error: unknown) => error instanceof HandlerGoneError && /lost its connection before taking the request and did not come back within 300 ms/.test(error.message));
    const counted = new Map<string, number>();
    for (const token of frozen.runs) counted.set(token, (counted.get(token) ?? 0) + 1);
    assert.deepEqual([...counted.entries()].filter(([, count]) => count > 1), [], 'no token ran twice');
  });
});
