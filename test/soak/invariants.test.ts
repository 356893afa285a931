/** The soak's checks, on journals made by hand: each passes a clean history and names what breaks it. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BusEvent } from '../../src/index.js';
import type { HistoryRow } from '../../src/protocol/history.js';
import type { FaultRecord } from '../../soak/faults.js';
import { executedOnce, filesIdentical, historyComplete, IN_FLIGHT_AT_KILL_MS, noCrash, requestsEnded, resourcesBounded, streamGapless, type RequesterJournal } from '../../soak/invariants.js';
import type { EndRecord, TransferRecord } from '../../soak/records.js';

const T = 1_800_000_000_000;

function requester(ends: EndRecord[], timeout = 1000): RequesterJournal {
  return { name: 'requester-1', sent: ends.map((end) => ({ sent: end.end, action: 'soak/work', timeout, workMs: 10, at: T })), ends, done: { done: true, pending: 0, at: T + 10_000 } };
}

const answered = (token: string, at = T + 500): EndRecord => ({ end: token, at, outcome: 'ok', accepted: [T + 10], progress: [T + 20, T + 20], fractions: [0.5, 0.5], final: at, handler: 'handler-1' });

function row(token: string, kind: HistoryRow['kind'], id: number): HistoryRow {
  return { id, token, kind, action: 'soak/work', source: 'x', ctime: T, etime: T, size: 2, truncated: false, data: '{}', ...(kind === 'progress' && { progress: 0.5 }) };
}

test('requests ended - a request with no end, or one ending past its time-out + 1 s, is counted', () => {
  assert.ok(requestsEnded([requester([answered('a')])]).holds);
  const late = requestsEnded([requester([answered('a', T + 2001)])]);
  assert.ok(!late.holds);
  assert.match(late.details[0]!, /a ended 2001 ms after it was sent, time-out 1000 ms/);
  const journal = requester([answered('a')]);
  journal.sent.push({ sent: 'b', action: 'soak/work', timeout: 1000, workMs: 10, at: T });
  assert.match(requestsEnded([journal]).details[0]!, /b .* never ended/);
});

test('executed once - a token run by two handlers is named; only the known causes may be known gaps', () => {
  const run = (by: string, at: number, destination = by) => ({ run: 't1', by, requester: 'r', action: 'soak/work', destination, at });
  const known = { sentToAll: 'fix A', movedAfterAck: 'fix B' };
  assert.ok(executedOnce([run('handler-1', T)], [], known).holds);
  const twice = executedOnce([run('handler-1', T), run('handler-2', T + 5)], [], known);
  assert.ok(!twice.holds);
  assert.equal(twice.expectedAfter, undefined, 'two targeted runs the history cannot explain are never a known gap');
  assert.match(twice.details[0]!, /t1 ran 2 times: handler-1 .*handler-2/);
  const toAll = executedOnce([run('handler-1', T, '*'), run('handler-2', T, '*')], [], known);
  assert.equal(toAll.expectedAfter, 'fix A');
  assert.match(toAll.details[0]!, /sent to every handler/);
  const history = (kind: HistoryRow['kind'], source: string, etime: number, target?: string): HistoryRow => ({ ...row('t1', kind, 1), source, etime, ...(target && { target }) });
  const acknowledgedFirst = [history('command', 'r', T - 50, 'handler-1'), history('accepted', 'handler-1', T, 'r'), history('command', 'r', T + 3000, 'handler-2')];
  const moved = executedOnce([run('handler-1', T), run('handler-2', T + 3001)], acknowledgedFirst, known);
  assert.equal(moved.expectedAfter, 'fix B');
  assert.match(moved.details[0]!, /moved to handler-2 3000 ms after handler-1 had acknowledged it/);
  const acknowledgedLate = [history('command', 'r', T - 50, 'handler-1'), history('accepted', 'handler-1', T + 4000, 'r'), history('command', 'r', T + 3000, 'handler-2')];
  assert.equal(executedOnce([run('handler-1', T), run('handler-2', T + 3001)], acknowledgedLate, known).expectedAfter, undefined);
});

test('history complete - every step seen needs its row (a progress yielded twice is one row), put down to the fault around it', () => {
  const rows = [row('a', 'command', 1), row('a', 'accepted', 2), row('a', 'progress', 3), row('a', 'final', 4)];
  assert.ok(historyComplete([requester([answered('a')])], rows, []).holds);
  const disk: FaultRecord = { fault: { id: 4, lane: 'infra', kind: 'disk-full', target: 'history-disk', at: 0, durationMs: 1000 }, outcome: 'done', startedAt: T, healedAt: T + 1000 };
  const missing = historyComplete([requester([answered('a')])], rows.filter((stored) => stored.kind !== 'final'), [disk], 'later work');
  assert.ok(!missing.holds);
  assert.equal(missing.expectedAfter, 'later work');
  assert.match(missing.figure, /1 of 4 rows missing: 1 around disk-full \(1 of them\)/);
  assert.match(missing.details[0]!, /a: its final row/);
  const noProgress = historyComplete([requester([answered('a')])], rows.filter((stored) => stored.kind !== 'progress'), []);
  assert.match(noProgress.details[0]!, /a: its progress 0.5 row, seen at/);
});

test('history complete - a step seen just before a kill -9 of relais start was in its memory: counted apart; earlier, it breaks the guarantee', () => {
  const rows = [row('a', 'command', 1), row('a', 'accepted', 2), row('a', 'progress', 3)];
  const killAt = (startedAt: number): FaultRecord => ({ fault: { id: 7, lane: 'infra', kind: 'broker-kill', target: 'relais-start', at: 0, durationMs: 1000 }, outcome: 'done', startedAt, healedAt: startedAt + 5000 });
  // The final was seen at T + 500.
  const inFlight = historyComplete([requester([answered('a')])], rows, [killAt(T + 500 + IN_FLIGHT_AT_KILL_MS)]);
  assert.ok(inFlight.holds);
  assert.match(inFlight.figure, /0 of 4 rows missing; besides, 1 seen from 2 s before a kill -9 of relais start until it was started again/);
  assert.match(inFlight.details[0]!, /a: its final row, seen .*, in flight at the kill/);
  const earlier = historyComplete([requester([answered('a')])], rows, [killAt(T + 500 + IN_FLIGHT_AT_KILL_MS + 1)]);
  assert.ok(!earlier.holds);
  assert.match(earlier.figure, /1 of 4 rows missing: 1 around broker-kill/);
  // The fault holds relais start down 1 s (durationMs) before starting it again: what came in that second was on its way from the dying one.
  assert.ok(historyComplete([requester([answered('a')])], rows, [killAt(T + 499)]).holds, 'delivered after the kill began, before the new one was started');
  const afterRestart = historyComplete([requester([answered('a')])], rows, [killAt(T + 500 - 1001)]);
  assert.ok(!afterRestart.holds, 'a step seen once the new relais start was started came from it');
});

test('events gapless - a silent skip, a repeat, a wrong gap and stopping short are each named', () => {
  const router = { events: [1, 2, 3, 4, 5].map((cursor): BusEvent => ({ cursor, time: T, type: 'notification', data: {} })) };
  const event = (cursor: number) => ({ cursor, type: 'notification', at: T });
  const done = { done: true as const, pending: 0, caughtUpTo: 5, at: T };
  assert.ok(streamGapless('f', [1, 2, 3, 4, 5].map(event), done, router, 'x').holds);
  assert.match(streamGapless('f', [1, 2, 4, 5].map(event), done, router, 'x').details[0]!, /events 3\.\.3 skipped without a gap reported/);
  assert.match(streamGapless('f', [1, 2, 2, 3, 4, 5].map(event), done, router, 'x').details[0]!, /event 2 came again/);
  assert.match(streamGapless('f', [event(1), { gap: 2, after: 1, at: T }, event(4), event(5)], done, router, 'x').details[0]!, /reported event 2 as missed, but the router has it/);
  assert.match(streamGapless('f', [1, 2, 3].map(event), done, router, 'x').details[0]!, /stopped at event 3; the router's last, when it was told to stop, was 5/);
  const retained = { events: [4, 5].map((cursor): BusEvent => ({ cursor, time: T, type: 'notification', data: {} })) };
  assert.ok(streamGapless('f', [{ gap: 3, after: 0, at: T }, event(4), event(5)], done, retained, 'x').holds);
});

test('files identical - exit 0 with other bytes, or a hung transfer, is wrong; a reported failure is not', () => {
  const transfer = (extra: Partial<TransferRecord>): TransferRecord => ({ direction: 'send', file: 'f', size: 1, startedAt: T, endedAt: T, exitCode: 0, signal: null, identical: true, hung: false, agentKilled: false, ...extra });
  assert.ok(filesIdentical([transfer({}), transfer({ exitCode: 1, identical: undefined })]).holds);
  assert.match(filesIdentical([transfer({ identical: false })]).details[0]!, /exited 0 but the bytes at the far end differ/);
  assert.match(filesIdentical([transfer({ hung: true, exitCode: null, signal: 'SIGKILL' })]).details[0]!, /did not end within its bound/);
});

test('resources bounded and no crash - growth past the bound, and an exit nobody asked for, are named', () => {
  const sample = (rssKb: number, fds: number) => ({ process: 'p', pid: 1, rssKb, fds, at: T });
  assert.ok(resourcesBounded(new Map([['p', sample(100_000, 20)]]), new Map([['p', sample(140_000, 25)]])).holds);
  assert.match(resourcesBounded(new Map([['p', sample(100_000, 20)]]), new Map([['p', sample(200_000, 20)]])).details[0]!, /RSS .* above its bound/);
  assert.match(resourcesBounded(new Map([['p', sample(100_000, 20)]]), new Map([['p', sample(100_000, 40)]])).details[0]!, /40 open descriptors/);
  const exit = { process: 'handler-1', pid: 9, code: 1, signal: null, at: T };
  assert.ok(noCrash([{ ...exit, meant: true }], []).holds);
  assert.ok(noCrash([{ ...exit, meant: false, beforeReady: true, tail: ['relais: did not start: cannot connect to the broker at mqtt://x: connection closed before CONNACK'] }], []).holds);
  assert.match(noCrash([{ ...exit, meant: false, tail: ['TypeError: boom'] }], []).details[0]!, /handler-1 \(pid 9\) exited by itself: code 1/);
  // A start that gave up because the broker was killed during it: put down to the kill, not before it nor long after.
  const lostAtStart = { ...exit, meant: false, beforeReady: true, at: T + 5000, tail: ['relais: did not start: connected to mqtt://x, but our presence did not come back within 10000 ms'] };
  const kill = (startedAt: number): FaultRecord => ({ fault: { id: 3, lane: 'infra', kind: 'broker-kill', target: 'relais-start', at: 0, durationMs: 1000 }, outcome: 'done', startedAt, healedAt: startedAt + 4000 });
  assert.ok(noCrash([lostAtStart], [], [kill(T)]).holds);
  assert.match(noCrash([lostAtStart], [], [kill(T)]).figure, /1 start\(s\) found the broker down or lost it/);
  assert.ok(!noCrash([lostAtStart], [], [kill(T + 6000)]).holds, 'a kill after it gave up explains nothing');
  assert.ok(!noCrash([lostAtStart], [], []).holds, 'without a broker fault, a start that gives up is a finding');
});
