/**
 * A requester process of the soak: `concurrency` loops each sending a request, following it to
 * its end (`call()`: acknowledgement, progress, final), journaling what it sent and what it saw,
 * then pausing. Request n is drawn from the seed and n alone (`requestPlan`), so a seed replays
 * the same requests whatever the timing. Beside them: a notification every `noteEveryMs`, and a
 * history query (`relais/history/get` of one of its answered tokens) every `historyEveryMs`.
 * `stop` on stdin: no new request; the pending ones end (each has its time-out), then `done`.
 *   node --import tsx soak/actors/requester.ts (settings in SOAK_ACTOR_SETTINGS)
 */
import { RemoteError, type Priority } from '../../src/index.js';
import { Journal } from '../journal.js';
import { Random } from '../random.js';
import type { DoneRecord, EndRecord, HistoryQueryRecord, NoteSentRecord, SentRecord } from '../records.js';
import { requestPlan } from '../workload.js';
import { actorSettings, connectActor, onStop } from './actor.js';
import { sleep } from '../sleep.js';

const settings = actorSettings<{ handlers: string[]; concurrency: number; noteEveryMs: number; historyEveryMs: number }>();
const journal = new Journal(settings.journal);
const bus = await connectActor(settings);
const stopping = new AbortController();
let next = 0;
let pending = 0;
const answered: string[] = [];

async function oneRequest(n: number): Promise<void> {
  const plan = requestPlan(settings.seed, n, settings.handlers);
  const token = `${settings.id}-${n}`;
  const sent: SentRecord = { sent: token, action: plan.action, timeout: plan.timeout, workMs: plan.workMs, at: Date.now(), ...(plan.target && { target: plan.target }) };
  journal.write(sent);
  const end: EndRecord = { end: token, at: 0, outcome: 'failed', accepted: [], progress: [], fractions: [] };
  pending += 1;
  try {
    const steps = bus.call(plan.action, { workMs: plan.workMs, steps: plan.steps, pad: 'x'.repeat(plan.padBytes) }, {
      token,
      timeout: plan.timeout,
      ...(plan.target && { target: plan.target }),
      ...(plan.priority && { priority: plan.priority as Priority }),
    });
    for await (const step of steps) {
      const now = Date.now();
      if (step.kind === 'accepted') end.accepted.push(now);
      else if (step.kind === 'progress') {
        end.progress.push(now);
        end.fractions.push(step.progress ?? -1);
      }
      else end.final = now;
      end.handler = step.source;
    }
    end.outcome = 'ok';
  } catch (error) {
    const failure = error as Error & { code?: unknown; responseCode?: number; cause?: unknown };
    // A final error from the handler comes as RemoteError, or as one of Relais's classes caused by one (protocol §5).
    const wire = failure instanceof RemoteError ? failure : failure.cause instanceof RemoteError ? failure.cause : undefined;
    end.outcome = wire ? 'remote' : 'failed';
    end.error = failure.name;
    if (typeof failure.responseCode === 'number') end.code = failure.responseCode;
    end.message = failure.message.slice(0, 200);
    if (wire) {
      end.handler = wire.handler;
      end.final = Date.now();
    }
  } finally {
    pending -= 1;
  }
  end.at = Date.now();
  journal.write(end);
  if (end.outcome !== 'failed') answered.push(token);
  if (answered.length > 50) answered.shift();
  await sleep(plan.pauseMs, stopping.signal);
}

async function requestLoop(): Promise<void> {
  while (!stopping.signal.aborted) await oneRequest(next++);
}

async function noteLoop(): Promise<void> {
  for (let seq = 1; !stopping.signal.aborted; seq += 1) {
    try {
      bus.notify('soak/notes', { from: settings.id, seq });
      journal.write({ note: seq, at: Date.now() } satisfies NoteSentRecord);
    } catch {
      // the offline queue is full: not sent, not journaled
    }
    await sleep(settings.noteEveryMs, stopping.signal);
  }
}

async function historyLoop(): Promise<void> {
  const random = new Random(settings.seed).fork('history-queries');
  while (!stopping.signal.aborted) {
    await sleep(settings.historyEveryMs, stopping.signal);
    if (stopping.signal.aborted || answered.length === 0) continue;
    const token = random.pick(answered);
    const started = Date.now();
    const record: HistoryQueryRecord = { historyQuery: token, at: started, ms: 0 };
    try {
      const page = (await bus.request('relais/history/get', { token }, { timeout: 5000 })) as { rows: unknown[] };
      record.rows = page.rows.length;
    } catch (error) {
      record.error = `${(error as Error).name}: ${(error as Error).message.slice(0, 120)}`;
    }
    record.ms = Date.now() - started;
    journal.write(record);
  }
}

// As an application does (README): a request sent before a provider is known waits for one within its own time-out (protocol §4.6).
await bus.waitForHandler('soak/work', { timeout: 120_000 });
const loops = [...Array.from({ length: settings.concurrency }, requestLoop), noteLoop(), historyLoop()];
onStop(bus, async () => {
  stopping.abort();
  await Promise.all(loops);
  journal.write({ done: true, pending, at: Date.now() } satisfies DoneRecord);
  await bus.close();
  journal.close();
});
process.stdout.write(`READY ${settings.id}\n`);
