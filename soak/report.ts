/**
 * The end of a run: the invariants (each a number, and the first offending cases), the figures
 * that describe the run (what was sent, what failed and why, latencies, notifications, the web
 * client, transfers, faults, memory), the verdict, and the same as JSON in the run folder.
 */
import fs from 'node:fs';
import os from 'node:os';
import type { Evidence } from './evidence.js';
import type { FaultRecord } from './faults.js';
import type { InvariantResult } from './invariants.js';
import type { EndRecord, SentRecord } from './records.js';
import type { ResourceSample } from './resources.js';
import { describeFault } from './schedule.js';

export interface RunSummary {
  seed: number;
  minutes: number;
  command: string;
  scheduleDigest: string;
  startedAt: number;
  endedAt: number;
  loadAverage: { start: number[]; end: number[] };
  runDir: string;
  invariants: InvariantResult[];
  figures: Record<string, unknown>;
  verdict: 'pass' | 'fail';
  strict: boolean;
}

/** Offending cases printed per invariant (report.json has more). */
const PRINTED_DETAILS = 12;

/** A failure may be put down to a fault when one touching it was in force around its life: this long after it healed. */
const AFTERMATH_MS = 5000;

export function figuresOf(evidence: Evidence, faults: readonly FaultRecord[], extra: { historyRows: number; events: number; unstoredRowLines: number; peak: ReadonlyMap<string, ResourceSample> }): Record<string, unknown> {
  const ends = evidence.requesters.flatMap((requester) => requester.ends.map((end) => ({ end, requester: requester.name })));
  const sentByToken = new Map(evidence.requesters.flatMap((requester) => requester.sent.map((sent) => [sent.sent, sent] as const)));
  const outcomes: Record<string, number> = {};
  const unexplained: Record<string, number> = {};
  const latencies: number[] = [];
  let overtime = 0;
  let progressTwice = 0;
  for (const { end, requester } of ends) {
    progressTwice += end.fractions.length - new Set(end.fractions).size;
    const sent = sentByToken.get(end.end);
    const label = end.outcome === 'ok' ? 'ok' : `${end.outcome}:${end.error}${end.code !== undefined ? `(${end.code})` : ''}`;
    outcomes[label] = (outcomes[label] ?? 0) + 1;
    if (end.outcome === 'ok' && sent) latencies.push(end.at - sent.at);
    if (!sent || end.outcome === 'ok' || (end.outcome === 'remote' && end.code === 101)) continue;
    if (end.error === 'TimeoutError' && sent.workMs >= sent.timeout) {
      overtime += 1;
      continue;
    }
    if (!touchedByFault(sent, end, requester, faults)) unexplained[label] = (unexplained[label] ?? 0) + 1;
  }
  const notesSent = evidence.requesters.reduce((sum, requester) => sum + requester.notesSent.length, 0);
  const notesSeen = new Set(evidence.follower.notesSeen.map((note) => `${note.noteFrom}:${note.seq}`)).size;
  const queries = evidence.requesters.flatMap((requester) => requester.historyQueries);
  const http = evidence.webClient.http;
  const count = (values: Array<string | number | undefined>) => values.reduce<Record<string, number>>((counts, value) => ({ ...counts, [String(value)]: (counts[String(value)] ?? 0) + 1 }), {});
  return {
    requests: {
      sent: sentByToken.size,
      ended: ends.length,
      outcomes,
      meantToTimeOut: overtime,
      failuresNoFaultExplains: unexplained,
      latencyOkMs: percentiles(latencies),
      /** call() yielding one progress message twice (the same fraction of the same token). */
      progressStepsYieldedTwice: progressTwice,
    },
    executions: evidence.runs.length,
    historyQueries: { asked: queries.length, answered: queries.filter((query) => query.error === undefined).length, errors: count(queries.map((query) => query.error?.split(':')[0])), latencyMs: percentiles(queries.map((query) => query.ms)) },
    notifications: { sent: notesSent, seenByFollower: notesSeen, share: notesSent ? `${((100 * notesSeen) / notesSent).toFixed(1)} %` : 'n/a' },
    web: {
      commands: count(http.filter((call) => call.http === 'post-action').map((call) => call.status ?? call.error?.split(':')[0])),
      historyReads: count(http.filter((call) => call.http === 'get-history').map((call) => call.status ?? call.error?.split(':')[0])),
      sseConnects: http.filter((call) => call.http === 'sse-connect').length,
      sseDrops: http.filter((call) => call.http === 'sse-drop').length,
    },
    transfers: {
      runs: evidence.transfers.length,
      bytes: evidence.transfers.reduce((sum, transfer) => sum + (transfer.exitCode === 0 ? transfer.size : 0), 0),
      identical: evidence.transfers.filter((transfer) => transfer.identical).length,
      reportedFailed: evidence.transfers.filter((transfer) => transfer.exitCode !== 0 && !transfer.hung).length,
      durationMs: percentiles(evidence.transfers.filter((transfer) => transfer.exitCode === 0).map((transfer) => transfer.endedAt - transfer.startedAt)),
    },
    router: { historyRows: extra.historyRows, events: extra.events, rowsNotStoredLogLines: extra.unstoredRowLines },
    faults: faults.map((record) => ({
      fault: describeFault(record.fault),
      outcome: record.outcome,
      ...(record.startedAt && record.healedAt && { healedAfterMs: record.healedAt - record.startedAt }),
      ...(record.note && { note: record.note }),
      ...(record.midTransfer !== undefined && { midTransfer: record.midTransfer }),
      ...(record.filledBytes !== undefined && { filledBytes: record.filledBytes }),
    })),
    peakMemory: Object.fromEntries([...extra.peak].map(([name, sample]) => [name, { rssMb: +(sample.rssKb / 1024).toFixed(1), fds: sample.fds }])),
  };
}

/** Whether a fault that could cause this failure was in force during the request (or just before it ended). */
function touchedByFault(sent: SentRecord, end: EndRecord, requester: string, faults: readonly FaultRecord[]): boolean {
  return faults.some((record) => {
    if (record.startedAt === undefined) return false;
    const { kind, target } = record.fault;
    const overlaps = record.startedAt <= end.at && (record.healedAt ?? Infinity) + AFTERMATH_MS >= sent.at;
    if (!overlaps) return false;
    if (kind === 'broker-kill' || kind === 'broker-stop') return true;
    if (kind === 'handler-kill' || kind === 'handler-stop' || kind.startsWith('net-')) return target === requester || target === end.handler || target === sent.target || (end.handler === undefined && target.startsWith('handler-'));
    return false;
  });
}

function percentiles(values: number[]): { count: number; p50?: number; p99?: number; max?: number } {
  if (values.length === 0) return { count: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { count: values.length, p50: at(0.5), p99: at(0.99), max: sorted.at(-1)! };
}

export function verdictOf(invariants: readonly InvariantResult[], strict: boolean): 'pass' | 'fail' {
  return invariants.every((invariant) => invariant.holds || (!strict && invariant.expectedAfter !== undefined)) ? 'pass' : 'fail';
}

export function printReport(summary: RunSummary, write: (line: string) => void): void {
  write('');
  write(`soak: seed ${summary.seed}, ${summary.minutes} min of faults, schedule ${summary.scheduleDigest}; load average ${summary.loadAverage.start.map((load) => load.toFixed(1)).join(' ')} at the start, ${summary.loadAverage.end.map((load) => load.toFixed(1)).join(' ')} at the end (${os.cpus().length} cores)`);
  write('invariants:');
  for (const invariant of summary.invariants) {
    const mark = invariant.holds ? 'holds ' : invariant.expectedAfter ? 'BROKEN (known)' : 'BROKEN';
    write(`  ${mark.padEnd(14)} ${invariant.name.padEnd(34)} ${invariant.figure}`);
    if (!invariant.holds && invariant.expectedAfter) write(`  ${''.padEnd(14)} ${''.padEnd(34)} expected to hold only after: ${invariant.expectedAfter}`);
    for (const detail of invariant.details.slice(0, PRINTED_DETAILS)) write(`  ${''.padEnd(14)}   - ${detail}`);
    if (invariant.details.length > PRINTED_DETAILS) write(`  ${''.padEnd(14)}   … ${invariant.details.length - PRINTED_DETAILS} more in report.json`);
  }
  write('figures:');
  for (const [name, value] of Object.entries(summary.figures)) {
    if (name === 'faults') {
      write('  faults:');
      for (const fault of value as Array<Record<string, unknown>>) write(`    ${fault.fault}: ${fault.outcome}${fault.healedAfterMs !== undefined ? `, healed in ${((fault.healedAfterMs as number) / 1000).toFixed(1)} s` : ''}${fault.midTransfer !== undefined ? `, mid-transfer ${fault.midTransfer}` : ''}${fault.note ? ` (${fault.note})` : ''}`);
    } else write(`  ${name}: ${JSON.stringify(value)}`);
  }
  const known = summary.invariants.filter((invariant) => !invariant.holds && invariant.expectedAfter);
  write(`verdict: ${summary.verdict.toUpperCase()}${known.length ? ` (${known.length} invariant(s) broken that are known to need other work${summary.strict ? '; --strict counts them' : '; --strict fails on them'})` : ''}`);
  write(`replay: ${summary.command}; journals, logs and report.json in ${summary.runDir}`);
}

export function writeReport(file: string, summary: RunSummary): void {
  fs.writeFileSync(file, `${JSON.stringify(summary, null, 2)}\n`);
}
