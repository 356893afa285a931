/**
 * A broker frozen (a paused VM, SIGSTOP) right after it handed a command to its handler: the
 * handler's first answer waits inside it, and the requester hears nothing from it at all. That
 * silence is the broker's, not the handler's, so the command must not move to another handler
 * (it would run twice): the requester asks the broker (protocol §4.7's probe), waits, and the
 * answer it held arrives once it runs again. The broker is an Aedes in its own process.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type Bus } from '../../src/index.js';
import { handlersThatFreezeTheBroker, startBrokerProcess, type BrokerProcess } from '../testkit/broker-process.js';
import { testLogger, uniqueId } from '../testkit/index.js';

const ACK_TIMEOUT_MS = 300;
/** Frozen for several of the requester's waits for a first answer. */
const FROZEN_MS = ACK_TIMEOUT_MS * 6;

describe('a broker frozen while a first answer crosses it', { timeout: 60_000 }, () => {
  let broker: BrokerProcess;
  const buses: Bus[] = [];
  const action = `demo/${uniqueId('frozen')}`;
  let runs: string[] = [];

  before(async () => {
    broker = await startBrokerProcess();
    const freezing = await handlersThatFreezeTheBroker(broker, action, ['first', 'second'], FROZEN_MS);
    buses.push(...freezing.handlers);
    runs = freezing.runs;
  });

  after(async () => {
    if (broker?.child.pid && !broker.exited) process.kill(broker.child.pid, 'SIGCONT');
    await Promise.all(buses.map((bus) => bus.close()));
    await broker?.stop();
  });

  it('frozen broker - the command does not move to another handler: it runs once, and its answer comes when the broker runs again (protocol §4.7)', async () => {
    const requester = await connect({ id: uniqueId('requester'), broker: broker.url, ackTimeout: ACK_TIMEOUT_MS, logger: testLogger });
    buses.push(requester);
    for (const handler of buses.slice(0, 2)) await requester.waitForHandler(action, { target: handler.id, timeout: 10_000 });
    const answer = await requester.request<{ by: string }>(action, {}, { timeout: 30_000 });
    assert.deepEqual(runs, [answer.by], `ran on ${runs.join(' and ')}`);
  });
});
