import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Metrics } from '../../src/router/metrics.js';
import type { HistoryRow } from '../../src/protocol/history.js';

let id = 0;
function row(kind: HistoryRow['kind'], token: string, etime: number, action = 'a/b'): HistoryRow {
  id += 1;
  return { id, token, kind, action, source: 's', etime, ctime: etime, data: 'null', size: 4, truncated: false };
}

describe('router metrics', () => {
  it('metrics - per-action rate, errors, error rate and latency percentiles over one interval', () => {
    const clock = { now: 0 };
    const metrics = new Metrics(() => clock.now);
    const rows: HistoryRow[] = [];
    for (let i = 0; i < 100; i += 1) {
      rows.push(row('command', `t${i}`, 1000));
      rows.push(row(i < 10 ? 'error' : 'final', `t${i}`, 1000 + i + 1)); // latencies 1..100 ms
    }
    rows.push(row('command', 'other', 1000, 'c/d'));
    metrics.onRows(rows);
    clock.now = 10_000;
    const snapshot = metrics.roll();
    const ab = snapshot.actions['a/b']!;
    assert.equal(ab.requests, 100);
    assert.equal(ab.completed, 100);
    assert.equal(ab.errors, 10);
    assert.equal(ab.errorRate, 0.1);
    assert.equal(ab.rate, 10);
    assert.deepEqual(ab.latency, { p50: 51, p90: 91, p99: 100, max: 100, samples: 100 });
    assert.equal(snapshot.actions['c/d']!.requests, 1);
    assert.equal(snapshot.actions['c/d']!.latency, undefined, 'not ended: no latency');
    assert.equal(snapshot.rows, 201);
    assert.equal(snapshot.rowsPerSecond, 20.1);
  });

  it('metrics - a request ending in the next interval counts there, timed from its command', () => {
    const clock = { now: 0 };
    const metrics = new Metrics(() => clock.now);
    metrics.onRows([row('command', 'slow', 500)]);
    clock.now = 1000;
    assert.equal(metrics.roll().actions['a/b']!.completed, 0);
    metrics.onRows([row('final', 'slow', 1700)]);
    clock.now = 2000;
    const next = metrics.roll().actions['a/b']!;
    assert.equal(next.requests, 0);
    assert.equal(next.completed, 1);
    assert.equal(next.latency!.p50, 1200);
    assert.deepEqual(metrics.latest.actions['a/b'], next);
  });
});
