/**
 * A broker frozen (a paused VM, SIGSTOP) right after it handed a Python requester's command to
 * its handler, with paho 1.6 and 2.x: the handler's first answer waits inside the broker, and
 * the requester hears nothing at all. That silence is the broker's, not the handler's, so the
 * command must not move to the other handler (it would run twice): the requester asks the
 * broker (protocol §4.7's "silent broker" row), waits, and the answer the broker held arrives
 * once it runs again. As test/integration/frozen-broker.test.ts does for the TypeScript
 * requester: the broker is an Aedes in its own process, the handlers TypeScript ones here.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Bus } from '../../src/index.js';
import { handlersThatFreezeTheBroker, startBrokerProcess, type BrokerProcess } from '../testkit/broker-process.js';
import { uniqueId } from '../testkit/index.js';
import { PAHO_VERSIONS, pythonGate, startPythonPeer, stopPythonPeers } from '../testkit/python.js';

const ACK_TIMEOUT_MS = 300;
/** Frozen for several of the requester's waits for a first answer. */
const FROZEN_MS = ACK_TIMEOUT_MS * 6;

describe('Python client: a broker frozen while a first answer crosses it', { skip: pythonGate('the Python frozen-broker tests').skip, timeout: 120_000 }, () => {
  let broker: BrokerProcess;
  const buses: Bus[] = [];

  before(async () => {
    broker = await startBrokerProcess();
  });

  after(async () => {
    if (broker?.child.pid && !broker.exited) process.kill(broker.child.pid, 'SIGCONT');
    await stopPythonPeers();
    await Promise.all(buses.map((bus) => bus.close()));
    await broker?.stop();
  });

  for (const version of PAHO_VERSIONS) {
    it(`frozen broker (paho ${version}) - a Python requester does not move the command to another handler: it runs once, and its answer comes when the broker runs again (protocol §4.7)`, { skip: pythonGate(`the Python frozen-broker test with paho ${version}.x`, version).skip }, async () => {
      const action = `demo/${uniqueId(`frozen-py${version}`)}`;
      const { handlers, runs } = await handlersThatFreezeTheBroker(broker, action, ['first', 'second'], FROZEN_MS);
      buses.push(...handlers);
      const requester = await startPythonPeer({ id: uniqueId(`py${version}-requester`), broker: broker.url, ack_timeout: ACK_TIMEOUT_MS / 1000 }, version);
      for (const handler of handlers) await requester.send('wait_for_handler', { action, options: { target: handler.id, timeout: 10 } });
      const answer = await requester.send<{ by: string }>('request', { action, payload: {}, options: { timeout: 30 } }, 40_000);
      assert.deepEqual(runs, [answer.by], `ran on ${runs.join(' and ')}`);
    });
  }
});
