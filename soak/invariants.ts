/**
 * The guarantees, checked at the end against what every actor journaled (Jepsen's "history")
 * and what the router kept. Each is one number that must be 0 (or a count of things that all
 * held), with the first offending cases named. An invariant that cannot hold before another
 * piece of work is merged says so in `expectedAfter`: it is still checked and reported exactly
 * the same, and `--strict` fails the run on it like on any other.
 */
import type { BusEvent } from '../src/index.js';
import type { HistoryRow } from '../src/protocol/history.js';
import type { FaultRecord } from './faults.js';
import type { DoneRecord, EndRecord, EventRecord, GapRecord, RunRecord, SentRecord, TransferRecord } from './records.js';
import type { ResourceSample } from './resources.js';
import type { PolicyFaultResult } from './policy-fault.js';
import type { ExitRecord } from './supervisor.js';

export interface InvariantResult {
  name: string;
  /** What it promises, in one line. */
  promise: string;
  holds: boolean;
  /** The number that says it: violations, out of how many cases. */
  figure: string;
  /** The first violations, one line each (the report prints the first dozen, report.json keeps these). */
  details: string[];
  /** Known not to hold before this work is merged; the run fails on it only with --strict. */
  expectedAfter?: string;
}

/** A request is late when it ends later than its time-out plus this. */
export const DEADLINE_SLACK_MS = 1000;
/** How far around a broker or disk fault a missing history row is put down to it. */
export const FAULT_MARGIN_MS = 3000;
/**
 * A step a requester saw this shortly before a kill -9 of `relais start`, or after it and before
 * the new one was started (what the dying broker had written was still on its way: in the
 * proxy, in the requester's socket), may not be in the history: the broker's journal and the
 * router's batch were in its memory (protocol §1.3: the journal keeps what the router has not
 * stored "unless the broker process dies first"; QoS 0 messages are never held). The router
 * stores within ~10 ms; a loaded machine is slower.
 */
export const IN_FLIGHT_AT_KILL_MS = 2000;
/** End of run vs. before the faults: RSS at most base × factor + slack, descriptors at most base + slack. */
export const RESOURCE_BOUNDS = { rssFactor: 1.5, rssSlackKb: 30 * 1024, fdSlack: 12 } as const;

const MAX_DETAILS = 500;

function result(name: string, promise: string, violations: string[], figure: string, expectedAfter?: string): InvariantResult {
  return { name, promise, holds: violations.length === 0, figure, details: violations.slice(0, MAX_DETAILS), ...(expectedAfter && violations.length > 0 && { expectedAfter }) };
}

export interface RequesterJournal {
  name: string;
  sent: SentRecord[];
  ends: EndRecord[];
  done?: DoneRecord;
}

/** Every request ended (a result, an error or a time-out) within its time-out + 1 s. */
export function requestsEnded(requesters: readonly RequesterJournal[]): InvariantResult {
  const violations: string[] = [];
  let sent = 0;
  let worstLateness = -Infinity;
  for (const requester of requesters) {
    const ends = new Map(requester.ends.map((end) => [end.end, end]));
    for (const request of requester.sent) {
      sent += 1;
      const end = ends.get(request.sent);
      if (!end) {
        violations.push(`${request.sent} (${request.action}, time-out ${request.timeout} ms) never ended`);
        continue;
      }
      const lateness = end.at - request.at - request.timeout;
      worstLateness = Math.max(worstLateness, lateness);
      if (lateness > DEADLINE_SLACK_MS) violations.push(`${request.sent} ended ${end.at - request.at} ms after it was sent, time-out ${request.timeout} ms (${end.outcome}${end.error ? ` ${end.error}` : ''})`);
    }
    if (!requester.done) violations.push(`${requester.name} never wrote its done line (it did not finish its pending requests)`);
    else if (requester.done.pending !== 0) violations.push(`${requester.name} stopped with ${requester.done.pending} request(s) pending`);
  }
  const worst = Number.isFinite(worstLateness) ? `; the latest ended ${worstLateness} ms ${worstLateness >= 0 ? 'after' : 'before'} its time-out` : '';
  return result('requests ended', `every request ends (result, error or time-out) within its time-out + ${DEADLINE_SLACK_MS} ms`, violations, `${violations.length} of ${sent} requests not ended in time${worst}`);
}

/** Causes of a double run that need work elsewhere first (each a description of that work). */
export interface KnownDoubleRuns {
  /** Sent to every handler (`destination` `*`): the requester's directory knew no provider yet (protocol §4.6). */
  sentToAll?: string;
  /** Sent again to another handler although the first had acknowledged it in time (protocol §4.7). */
  movedAfterAck?: string;
}

/**
 * No token ran twice (executions counted at the handlers). A double run is told apart by what
 * the history shows of it: sent to every handler; or moved to a second handler after the first
 * had acknowledged it (its acknowledgement written before the command was sent again). Only
 * those may be known gaps; any other double run fails the run.
 */
export function executedOnce(runs: readonly RunRecord[], rows: readonly HistoryRow[], known: KnownDoubleRuns = {}): InvariantResult {
  const byToken = new Map<string, RunRecord[]>();
  for (const run of runs) byToken.set(run.run, [...(byToken.get(run.run) ?? []), run]);
  const doubled = new Set([...byToken].filter(([, executions]) => executions.length > 1).map(([token]) => token));
  const rowsOf = new Map<string, HistoryRow[]>();
  for (const row of rows) if (doubled.has(row.token)) rowsOf.set(row.token, [...(rowsOf.get(row.token) ?? []), row]);
  const violations: string[] = [];
  const classes = { sentToAll: 0, movedAfterAck: 0, other: 0 };
  for (const token of doubled) {
    const executions = [...byToken.get(token)!].sort((a, b) => a.at - b.at);
    const ran = executions.map((run) => `${run.by} at ${run.at}`).join(', ');
    if (executions.every((run) => run.destination === '*')) {
      classes.sentToAll += 1;
      violations.push(`${token} ran ${executions.length} times (sent to every handler: destination *): ${ran}`);
      continue;
    }
    const moved = movedAfterAck(executions, rowsOf.get(token) ?? []);
    if (moved) classes.movedAfterAck += 1;
    else classes.other += 1;
    violations.push(`${token} ran ${executions.length} times${moved ? ` (${moved})` : ''}: ${ran}`);
  }
  const knownOnly = violations.length > 0 && classes.other === 0 && (classes.sentToAll === 0 || known.sentToAll) && (classes.movedAfterAck === 0 || known.movedAfterAck);
  const expectedAfter = knownOnly ? [classes.sentToAll ? known.sentToAll : undefined, classes.movedAfterAck ? known.movedAfterAck : undefined].filter(Boolean).join('; and ') : undefined;
  return result(
    'executed once',
    'no command runs twice (executions counted per token at the handlers)',
    violations,
    `${violations.length} of ${byToken.size} tokens ran more than once (${runs.length} executions; ${classes.sentToAll} sent to every handler, ${classes.movedAfterAck} moved after an acknowledgement, ${classes.other} other)`,
    expectedAfter,
  );
}

/** Why a token ran on a second handler when the first had acknowledged it before the command was sent again, or undefined. */
function movedAfterAck(executions: readonly RunRecord[], rows: readonly HistoryRow[]): string | undefined {
  const [first, second] = executions as [RunRecord, RunRecord];
  const answered = rows.filter((row) => row.source === first.by && row.kind !== 'command' && row.kind !== 'cancel').map((row) => row.etime);
  const resent = rows.filter((row) => row.kind === 'command' && row.target === second.by).map((row) => row.etime);
  if (answered.length === 0 || resent.length === 0) return undefined;
  const acknowledged = Math.min(...answered);
  const movedAt = Math.min(...resent);
  if (acknowledged > movedAt) return undefined;
  return `moved to ${second.by} ${movedAt - acknowledged} ms after ${first.by} had acknowledged it`;
}

interface MissingRow {
  token: string;
  kind: string;
  seenAt: number;
  cause: string;
}

/**
 * What a requester saw answered or acknowledged is in the history: the command, each
 * acknowledgement, each progress step, the final (or the handler's error). The one exception
 * is the guarantee's own (protocol §1.3): what `relais start` held in memory when it was killed
 * with SIGKILL, a step seen from IN_FLIGHT_AT_KILL_MS before the kill until the new one was
 * started; those are counted apart. Any other row missing breaks it, and is put down to the fault in force when the
 * requester saw it (a broker kill or freeze, a full disk), or to none.
 */
export function historyComplete(requesters: readonly RequesterJournal[], rows: readonly HistoryRow[], faults: readonly FaultRecord[], expectedAfter?: string): InvariantResult {
  const byToken = new Map<string, { kinds: Map<string, number>; fractions: Set<number> }>();
  for (const row of rows) {
    const stored = byToken.get(row.token) ?? { kinds: new Map<string, number>(), fractions: new Set<number>() };
    stored.kinds.set(row.kind, (stored.kinds.get(row.kind) ?? 0) + 1);
    if (row.kind === 'progress' && row.progress !== undefined) stored.fractions.add(row.progress);
    byToken.set(row.token, stored);
  }
  const missing: MissingRow[] = [];
  const inFlightAtKill: MissingRow[] = [];
  // From a little before each kill until the new relais start is spawned (after the fault's hold): only the dying one could have sent it.
  const kills = faults.filter((record) => record.fault.kind === 'broker-kill' && record.startedAt !== undefined).map((record) => ({ from: record.startedAt! - IN_FLIGHT_AT_KILL_MS, to: record.startedAt! + record.fault.durationMs }));
  let expected = 0;
  const need = (token: string, kind: string, seenAt: number, present: boolean) => {
    expected += 1;
    if (present) return;
    const killedSoonAfter = kills.some((kill) => kill.from <= seenAt && seenAt <= kill.to);
    (killedSoonAfter ? inFlightAtKill : missing).push({ token, kind, seenAt, cause: causeAt(seenAt, faults) });
  };
  for (const requester of requesters) {
    for (const end of requester.ends) {
      const answered = end.outcome !== 'failed' || end.accepted.length > 0 || end.progress.length > 0;
      if (!answered) continue;
      const stored = byToken.get(end.end);
      const count = (kind: string) => stored?.kinds.get(kind) ?? 0;
      need(end.end, 'command', end.accepted[0] ?? end.progress[0] ?? end.final ?? end.at, count('command') > 0);
      end.accepted.forEach((at, index) => need(end.end, 'accepted', at, count('accepted') > index));
      // Progress rows are matched by their fraction: one message yielded twice is one row.
      const seenFractions = new Map<number, number>();
      end.fractions.forEach((fraction, index) => seenFractions.has(fraction) || seenFractions.set(fraction, end.progress[index]!));
      for (const [fraction, at] of seenFractions) need(end.end, `progress ${fraction}`, at, stored?.fractions.has(fraction) ?? false);
      if (end.outcome === 'ok') need(end.end, 'final', end.final ?? end.at, count('final') > 0);
      if (end.outcome === 'remote') need(end.end, 'error', end.final ?? end.at, count('error') > 0);
    }
  }
  // By kind of fault in the figure (a long run has hundreds of faults); each row names its fault.
  const causes = new Map<string, { rows: number; faults: Set<string> }>();
  for (const row of missing) {
    const kind = /around fault (#\d+) (\S+)/.exec(row.cause);
    const key = kind ? `around ${kind[2]}` : row.cause;
    const entry = causes.get(key) ?? { rows: 0, faults: new Set<string>() };
    entry.rows += 1;
    if (kind) entry.faults.add(kind[1]!);
    causes.set(key, entry);
  }
  const split = [...causes].map(([cause, entry]) => `${entry.rows} ${cause}${entry.faults.size ? ` (${entry.faults.size} of them)` : ''}`).join(', ');
  const violations = missing.map((row) => `${row.token}: its ${row.kind} row, seen at ${row.seenAt}, is not in the history (${row.cause}${whenInFault(row.seenAt, faults)})`);
  const atKill = inFlightAtKill.length > 0 ? `; besides, ${inFlightAtKill.length} seen from ${IN_FLIGHT_AT_KILL_MS / 1000} s before a kill -9 of relais start until it was started again (in its memory when it died: protocol §1.3)` : '';
  const verdict = result(
    'history complete',
    `every step a requester saw (command, acknowledgement, progress, final) is a row of the history, but what relais start held when killed -9 (seen from ${IN_FLIGHT_AT_KILL_MS / 1000} s before the kill until it was started again)`,
    violations,
    `${missing.length} of ${expected} rows missing${split ? `: ${split}` : ''}${atKill}`,
    expectedAfter,
  );
  if (violations.length === 0) verdict.details.push(...inFlightAtKill.map((row) => `${row.token}: its ${row.kind} row, seen ${row.seenAt}, in flight at the kill (${row.cause}${whenInFault(row.seenAt, faults)})`));
  return verdict;
}

/** Where a moment falls in relation to the nearest broker or disk fault: "; 1.2 s before it began", "; 0.4 s after it healed". */
function whenInFault(at: number, faults: readonly FaultRecord[]): string {
  let best: { distance: number; text: string } | undefined;
  for (const record of faults) {
    const { kind, id } = record.fault;
    if (record.startedAt === undefined || !HISTORY_FAULTS.has(kind)) continue;
    const healed = record.healedAt ?? record.startedAt;
    const seconds = (ms: number) => `${(Math.abs(ms) / 1000).toFixed(2)} s`;
    const candidate =
      at < record.startedAt
        ? { distance: record.startedAt - at, text: `${seconds(record.startedAt - at)} before #${id} began` }
        : at <= healed
          ? { distance: 0, text: `${seconds(at - record.startedAt)} into #${id}` }
          : { distance: at - healed, text: `${seconds(at - healed)} after #${id} healed` };
    if (!best || candidate.distance < best.distance) best = candidate;
  }
  return best ? `; ${best.text}` : '';
}

/** The broker or disk fault a moment falls in (the one in force, else the nearest within the margin), or none. */
export function causeAt(at: number, faults: readonly FaultRecord[]): string {
  let best: { distance: number; record: FaultRecord } | undefined;
  for (const record of faults) {
    if (record.startedAt === undefined || !HISTORY_FAULTS.has(record.fault.kind)) continue;
    const healed = record.healedAt ?? Date.now();
    const distance = at < record.startedAt ? record.startedAt - at : at > healed ? at - healed : 0;
    if (distance <= FAULT_MARGIN_MS && (!best || distance < best.distance)) best = { distance, record };
  }
  return best ? `around fault #${best.record.fault.id} ${best.record.fault.kind}` : 'with no broker or disk fault near';
}

/** The faults that can make the router miss rows: its process killed or frozen (with the broker), its disk full. */
const HISTORY_FAULTS = new Set(['broker-kill', 'broker-stop', 'disk-full']);

/**
 * An event stream a consumer followed from cursor 0: each cursor once, in order, one more than
 * the one before, or after a gap it reported with exactly the number skipped; the events it got
 * are the router's (same type at the same cursor); no reported gap hides events the router
 * still has; and it caught up with the router's last event.
 */
export function streamGapless(name: string, items: ReadonlyArray<EventRecord | GapRecord>, done: DoneRecord | undefined, router: { events: readonly BusEvent[] }, how: string): InvariantResult {
  const stored = new Map(router.events.map((event) => [event.cursor, event]));
  const violations: string[] = [];
  let previous = 0;
  let afterGap: number | undefined;
  let received = 0;
  let gaps = 0;
  for (const item of items) {
    if ('gap' in item) {
      gaps += 1;
      if (item.after !== previous) violations.push(`a gap of ${item.gap} reported after cursor ${item.after}, but the last event was ${previous}`);
      for (let cursor = item.after + 1; cursor <= item.after + item.gap; cursor += 1) {
        if (stored.has(cursor)) {
          violations.push(`a gap reported event ${cursor} as missed, but the router has it`);
          break;
        }
      }
      afterGap = item.after + item.gap + 1;
      continue;
    }
    received += 1;
    const expected = afterGap ?? previous + 1;
    if (item.cursor <= previous) violations.push(`event ${item.cursor} came again or out of order (after ${previous})`);
    else if (item.cursor !== expected) violations.push(afterGap !== undefined ? `after a gap said the next event is ${afterGap}, event ${item.cursor} came` : `events ${expected}..${item.cursor - 1} skipped without a gap reported`);
    const event = stored.get(item.cursor);
    if (event && event.type !== item.type) violations.push(`event ${item.cursor} was a ${item.type} here but is a ${event.type} at the router`);
    afterGap = undefined;
    previous = Math.max(previous, item.cursor);
  }
  // It was told to stop once it had read up to the router's last event then: it must have got there.
  const target = done?.caughtUpTo;
  if (!done) violations.push('it never wrote its done line');
  else if (target === undefined) violations.push('it could not ask the router for its last event when told to stop');
  else if (previous < target) violations.push(`it stopped at event ${previous}; the router's last, when it was told to stop, was ${target}`);
  return result(`events gapless (${name})`, `${how}: each event once and in order, or the gap reported exactly`, violations, `${violations.length} violations in ${received} events and ${gaps} gaps reported, up to cursor ${previous}${target !== undefined ? ` (the router's last at the stop: ${target})` : ''}`);
}

/** Files arrived byte-identical, or the CLI said they failed; none hung. */
export function filesIdentical(transfers: readonly TransferRecord[]): InvariantResult {
  const violations: string[] = [];
  let identical = 0;
  let failed = 0;
  for (const transfer of transfers) {
    const what = `${transfer.direction} ${transfer.file} (${transfer.size} bytes${transfer.agentKilled ? ', agent killed meanwhile' : ''})`;
    if (transfer.hung) violations.push(`${what} did not end within its bound and was killed`);
    else if (transfer.exitCode === 0 && !transfer.identical) violations.push(`${what} exited 0 but the bytes at the far end differ`);
    else if (transfer.exitCode === 0) identical += 1;
    else if (transfer.exitCode === 1 || transfer.exitCode === 3) failed += 1;
    else violations.push(`${what} ended with exit ${transfer.exitCode} signal ${transfer.signal}: ${transfer.stderrTail ?? ''}`);
  }
  const killedDuring = transfers.filter((transfer) => transfer.agentKilled);
  return result(
    'files identical',
    'a file transferred (relais send, relais fetch) is byte-identical at the far end, or the command reports it failed',
    violations,
    `${violations.length} of ${transfers.length} transfers wrong or hung; ${identical} identical, ${failed} reported failed; ${killedDuring.length} ran while the agent was killed (${killedDuring.filter((transfer) => transfer.exitCode === 0 && transfer.identical).length} of them completed identical)`,
  );
}

/** Memory and descriptors of each long-lived process back within a bound of what they were before the faults. */
export function resourcesBounded(baseline: ReadonlyMap<string, ResourceSample>, end: ReadonlyMap<string, ResourceSample>): InvariantResult {
  const violations: string[] = [];
  const lines: string[] = [];
  for (const [name, before] of baseline) {
    const after = end.get(name);
    if (!after) {
      violations.push(`${name}: not running at the end`);
      continue;
    }
    const rssBound = before.rssKb * RESOURCE_BOUNDS.rssFactor + RESOURCE_BOUNDS.rssSlackKb;
    const fdBound = before.fds + RESOURCE_BOUNDS.fdSlack;
    lines.push(`${name} ${mb(before.rssKb)}→${mb(after.rssKb)} MB, ${before.fds}→${after.fds} fds`);
    if (after.rssKb > rssBound) violations.push(`${name}: RSS ${mb(after.rssKb)} MB at the end, above its bound ${mb(rssBound)} MB (${mb(before.rssKb)} MB before the faults)`);
    if (after.fds > fdBound) violations.push(`${name}: ${after.fds} open descriptors at the end, above its bound ${fdBound} (${before.fds} before the faults)`);
  }
  const verdict = result(
    'resources bounded',
    `RSS ≤ ${RESOURCE_BOUNDS.rssFactor} × before + ${RESOURCE_BOUNDS.rssSlackKb / 1024} MB and descriptors ≤ before + ${RESOURCE_BOUNDS.fdSlack}, for every long-lived process, once the faults stopped`,
    violations,
    `${violations.length} of ${baseline.size} processes over their bound`,
  );
  verdict.details.push(...(violations.length === 0 ? lines : []));
  return verdict;
}

function mb(kb: number): string {
  return (kb / 1024).toFixed(1);
}

/** A process that exits while starting because the broker cannot be reached says so and exits 1: what it should do. */
const UNREACHABLE_AT_START = /did not start: cannot connect to the broker/;
/** Any other reason a start gives up, said the same way. */
const DID_NOT_START = /did not start: /;
/** A start that gave up this long after the broker was killed or frozen, or while it was, is put down to it. */
const BROKER_AWAY_MARGIN_MS = 15_000;

/**
 * No process ended that the soak did not end; no CLI run died of an uncaught error. A process
 * that gives up while starting because the broker is away (it says "did not start: …" and exits
 * 1; the soak starts it again, as a service manager would) is not a crash: it found the broker
 * unreachable, or the broker was killed or frozen during its start (`faults`).
 */
export function noCrash(exits: readonly ExitRecord[], transfers: readonly TransferRecord[], faults: readonly FaultRecord[] = []): InvariantResult {
  const violations: string[] = [];
  let unreachableAtStart = 0;
  const brokerAwayAt = (at: number) =>
    faults.some((record) => (record.fault.kind === 'broker-kill' || record.fault.kind === 'broker-stop') && record.startedAt !== undefined && record.startedAt <= at && at <= (record.healedAt ?? Infinity) + BROKER_AWAY_MARGIN_MS);
  for (const exit of exits) {
    if (exit.meant) continue;
    const said = (pattern: RegExp) => (exit.tail ?? []).some((line) => pattern.test(line));
    if (exit.beforeReady && exit.code === 1 && (said(UNREACHABLE_AT_START) || (said(DID_NOT_START) && brokerAwayAt(exit.at)))) {
      unreachableAtStart += 1;
      continue;
    }
    violations.push(`${exit.process} (pid ${exit.pid}) exited by itself${exit.beforeReady ? ' while starting' : ''}: code ${exit.code} signal ${exit.signal}; last lines: ${(exit.tail ?? []).slice(-6).join(' | ')}`);
  }
  for (const transfer of transfers) {
    if (transfer.stderrTail && /\n?\s+at .+\(.+:\d+:\d+\)/.test(transfer.stderrTail)) violations.push(`relais ${transfer.direction} ${transfer.file} died with a stack trace: ${transfer.stderrTail}`);
  }
  const meant = exits.filter((exit) => exit.meant).length;
  return result('no crash', 'no process ends that the soak did not kill or stop', violations, `${violations.length} processes ended by themselves (${meant} ended by the soak; ${unreachableAtStart} start(s) found the broker down or lost it, said so and exited 1, and were started again)`);
}

/** Each broken policy file was refused, the old policy stayed in force, and the good file was reloaded. */
export function policyKept(faults: readonly FaultRecord[]): InvariantResult {
  const policies = faults.filter((record) => record.policy).map((record) => [record.fault.id, record.policy!] as const);
  const violations: string[] = [];
  for (const [id, policy] of policies) {
    const wrong = describePolicy(policy);
    if (wrong) violations.push(`fault #${id} (${policy.variant}): ${wrong}`);
  }
  return result('broken policy refused', 'a broken policy file is refused and the policy in force stays (an observer still may not command, a client still may)', violations, `${violations.length} of ${policies.length} broken policies not handled`);
}

function describePolicy(policy: PolicyFaultResult): string | undefined {
  const wrong: string[] = [];
  if (!policy.refused) wrong.push('no refusal was logged');
  if (!policy.keptOld) wrong.push(`the probe got observer ${policy.probe?.observer ?? '?'} (403 expected) and client ${policy.probe?.client ?? '?'} (404 expected)${policy.note ? `, ${policy.note}` : ''}`);
  if (!policy.restored) wrong.push('the good file was not reloaded');
  return wrong.length > 0 ? wrong.join('; ') : undefined;
}

/** Every fault was done and undone (a process that does not come back is a finding of its own). */
export function faultsHealed(faults: readonly FaultRecord[]): InvariantResult {
  const violations = faults.filter((record) => record.outcome === 'failed').map((record) => `fault #${record.fault.id} ${record.fault.kind} ${record.fault.target}: ${record.note}`);
  const done = faults.filter((record) => record.outcome === 'done').length;
  const skipped = faults.filter((record) => record.outcome === 'skipped');
  return result(
    'faults healed',
    'every fault injected is undone: a killed process starts again and serves, a link heals, the disk empties',
    violations,
    `${violations.length} of ${faults.length} faults did not heal; ${done} done, ${skipped.length} skipped${skipped.length ? ` (${skipped.map((record) => `#${record.fault.id} ${record.note}`).join('; ')})` : ''}`,
  );
}
