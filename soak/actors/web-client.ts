/**
 * The web client of the soak: a program on the HTTP API (docs/http-api.md) with an identity and
 * its token, as a front end would be. It follows `GET /api/events/stream` (SSE) from cursor 0,
 * reconnecting with `Last-Event-ID` after every drop; sends a command with `POST
 * /api/actions/soak/work` every second or two; reads `GET /api/history` every few seconds. Every
 * HTTP call has a time-out of its own, so each one ends. `stop` on stdin: the stream catches up
 * with the router, then `done`.
 *   node --import tsx soak/actors/web-client.ts (settings in SOAK_ACTOR_SETTINGS)
 */
import { Journal } from '../journal.js';
import type { DoneRecord, EventRecord, GapRecord, HttpRecord } from '../records.js';
import { webCommandPlan } from '../workload.js';
import { actorSettings, onStop } from './actor.js';
import { sleep } from '../sleep.js';

/** `broker` is unused here: the web client reaches the bus through `web`, the HTTP API's URL. */
const settings = actorSettings<{ web: string; historyEveryMs: number }>();
const journal = new Journal(settings.journal);
const stopping = new AbortController();
const authorization = `Bearer ${settings.id}:${settings.token}`;
const HTTP_TIMEOUT_MS = 15_000;
let lastCursor: number | undefined;
let streamStop: AbortController | undefined;

async function call(what: HttpRecord['http'], path: string, init: RequestInit = {}): Promise<Response | undefined> {
  const started = Date.now();
  const record: HttpRecord = { http: what, at: started };
  try {
    const response = await fetch(`${settings.web}${path}`, { ...init, headers: { authorization, ...init.headers }, signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
    record.status = response.status;
    if (what === 'post-action') {
      const body = (await response.json()) as { token?: string; error?: { code: string } };
      if (body.token) record.token = body.token;
      if (body.error) record.error = body.error.code;
    } else await response.arrayBuffer();
    return response;
  } catch (error) {
    record.error = `${(error as Error).name}: ${(error as Error).message.slice(0, 120)}`;
    return undefined;
  } finally {
    record.ms = Date.now() - started;
    journal.write(record);
  }
}

async function commandLoop(): Promise<void> {
  for (let n = 0; !stopping.signal.aborted; n += 1) {
    const plan = webCommandPlan(settings.seed, n);
    await call('post-action', `/api/actions/soak/work?timeout=${plan.timeout}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ workMs: plan.workMs, steps: plan.steps }),
    });
    await sleep(plan.pauseMs, stopping.signal);
  }
}

async function historyLoop(): Promise<void> {
  while (!stopping.signal.aborted) {
    await sleep(settings.historyEveryMs, stopping.signal);
    if (!stopping.signal.aborted) await call('get-history', '/api/history?order=newest&limit=20');
  }
}

/** The SSE stream, from cursor 0, resumed with Last-Event-ID after each drop. */
async function streamLoop(): Promise<void> {
  while (!stopping.signal.aborted) {
    streamStop = new AbortController();
    const started = Date.now();
    try {
      const response = await fetch(`${settings.web}/api/events/stream${lastCursor === undefined ? '?since=0' : ''}`, {
        headers: { authorization, accept: 'text/event-stream', ...(lastCursor !== undefined && { 'last-event-id': String(lastCursor) }) },
        signal: streamStop.signal,
      });
      journal.write({ http: 'sse-connect', status: response.status, ms: Date.now() - started, at: Date.now() } satisfies HttpRecord);
      if (response.ok && response.body) await readEvents(response.body);
      else await response.arrayBuffer().catch(() => {});
    } catch (error) {
      if (stopping.signal.aborted) break;
      journal.write({ http: 'sse-drop', error: `${(error as Error).name}: ${(error as Error).message.slice(0, 120)}`, at: Date.now() } satisfies HttpRecord);
    }
    await sleep(1000, stopping.signal);
  }
}

async function readEvents(body: ReadableStream<Uint8Array>): Promise<void> {
  const decoder = new TextDecoder();
  let buffered = '';
  let fields: Record<string, string> = {};
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(chunk, { stream: true });
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      if (line === '') {
        dispatch(fields);
        fields = {};
      } else if (!line.startsWith(':')) {
        const colon = line.indexOf(':');
        const name = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        fields[name] = fields[name] === undefined ? value : `${fields[name]}\n${value}`;
      }
    }
  }
}

function dispatch(fields: Record<string, string>): void {
  if (fields.data === undefined) return;
  const data = JSON.parse(fields.data) as { type?: string; cursor?: number; missed?: number; after?: number };
  if (fields.event === 'gap') {
    journal.write({ gap: data.missed ?? -1, after: data.after ?? -1, at: Date.now() } satisfies GapRecord);
    return;
  }
  const cursor = Number(fields.id);
  journal.write({ cursor, type: data.type ?? '?', at: Date.now() } satisfies EventRecord);
  lastCursor = cursor;
}

const loops = [commandLoop(), historyLoop()];
const streaming = streamLoop();
onStop(undefined, async () => {
  stopping.abort();
  await Promise.all(loops);
  // Catch up with what the router has stored before ending the stream: the checks compare the two.
  const answer = await fetch(`${settings.web}/api/events?limit=1`, { headers: { authorization }, signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) })
    .then((response) => response.json() as Promise<{ latest?: number }>)
    .catch(() => ({ latest: undefined }));
  if (answer.latest !== undefined) {
    for (const giveUp = Date.now() + 30_000; (lastCursor ?? 0) < answer.latest && Date.now() < giveUp; ) await sleep(200);
  }
  streamStop?.abort();
  await streaming;
  journal.write({ done: true, pending: 0, ...(answer.latest !== undefined && { caughtUpTo: answer.latest }), at: Date.now() } satisfies DoneRecord);
  journal.close();
});
process.stdout.write(`READY ${settings.id}\n`);
