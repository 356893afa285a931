/** The soak's schedule: drawn from the seed alone, every kind met early, lanes never overlapping themselves. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Random } from '../../soak/random.js';
import { CLIENT_KINDS, INFRA_KINDS, planFaults, scheduleDigest } from '../../soak/schedule.js';
import { requestPlan, transferFile } from '../../soak/workload.js';

const cast = { handlers: ['handler-1', 'handler-2'], agent: 'agent-1', links: ['handler-1', 'requester-1', 'web-client'] };

test('schedule - the same seed gives the same faults, another seed others', () => {
  const plan = (seed: number) => planFaults(new Random(seed).fork('faults'), 180_000, cast);
  assert.deepEqual(plan(1), plan(1));
  assert.equal(scheduleDigest(plan(1)), scheduleDigest(plan(1)));
  assert.notEqual(scheduleDigest(plan(1)), scheduleDigest(plan(2)));
});

test('schedule - three minutes meet every kind of fault, each lane one fault at a time', () => {
  for (const seed of [1, 2, 3, 42, 1234]) {
    const faults = planFaults(new Random(seed).fork('faults'), 180_000, cast);
    const kinds = new Set(faults.map((fault) => fault.kind));
    for (const kind of [...INFRA_KINDS, ...CLIENT_KINDS]) assert.ok(kinds.has(kind), `seed ${seed}: no ${kind} in ${[...kinds].join(', ')}`);
    for (const lane of ['infra', 'clients']) {
      const ofLane = faults.filter((fault) => fault.lane === lane);
      for (let i = 1; i < ofLane.length; i += 1) assert.ok(ofLane[i]!.at >= ofLane[i - 1]!.at + ofLane[i - 1]!.durationMs, `seed ${seed}: ${lane} faults overlap`);
    }
    assert.ok(faults.every((fault) => fault.at < 180_000));
  }
});

test('workload - request n and file n depend on the seed and n only', () => {
  assert.deepEqual(requestPlan(7, 12, ['h']), requestPlan(7, 12, ['h']));
  assert.notDeepEqual([0, 1, 2, 3].map((n) => requestPlan(7, n, ['h'])), [0, 1, 2, 3].map((n) => requestPlan(8, n, ['h'])));
  assert.ok(transferFile(5, 3).equals(transferFile(5, 3)));
  assert.ok(!transferFile(5, 3).equals(transferFile(6, 3)));
});
