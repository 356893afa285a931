/**
 * The basics across languages on Mosquitto (protocol §1.2), a broker that is not the embedded
 * one: a Python handler answering the TypeScript library with progress, a TypeScript handler
 * answering Python, a cancel both ways, and notifications, with paho 1.6 and paho 2.x.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { CancelledError, type Bus } from '../../src/index.js';
import { peerGate, setup, subscribedForNext, uniqueId, within, type Kit } from '../testkit/index.js';
import { PAHO_VERSIONS, pythonGate, startPythonPeer, stopPythonPeers } from '../testkit/python.js';

const mosquitto = peerGate('mosquitto', 'the cross-language tests on Mosquitto');
const python = mosquitto.run ? pythonGate('the cross-language tests on Mosquitto') : { skip: false as const };

describe('Python client on Mosquitto', { skip: mosquitto.skip || python.skip, timeout: 300_000 }, () => {
  let kit: Kit;
  let ts: Bus;
  before(async () => {
    kit = await setup('mosquitto');
    ts = await kit.connect(uniqueId('ts'));
  });
  after(async () => {
    await stopPythonPeers();
    await kit?.cleanup();
  });

  for (const version of PAHO_VERSIONS) {
    it(`mosquitto (paho ${version}) - requests both ways with progress, cancel both ways, notifications both ways`, { skip: pythonGate(`the cross-language tests on Mosquitto with paho ${version}.x`, version).skip }, async () => {
      const peer = await startPythonPeer({ id: uniqueId(`py${version}-mosquitto`), broker: kit.broker.url }, version);
      // Python handler, TypeScript requester.
      await peer.send('serve', { action: `mq${version}/install`, behaviour: 'progress', args: { steps: [[0.5, { step: 'half' }]], result: { installed: true } } });
      await peer.send('serve', { action: `mq${version}/hang`, behaviour: 'hang' });
      await ts.waitForHandler(`mq${version}/install`, { target: peer.id, timeout: 15_000 });
      await ts.waitForHandler(`mq${version}/hang`, { target: peer.id, timeout: 15_000 });
      const steps: string[] = [];
      for await (const step of ts.call(`mq${version}/install`, {}, { timeout: 15_000 })) {
        if (step.kind === 'progress') steps.push(`progress ${step.progress} ${JSON.stringify(step.payload)}`);
        else if (step.kind === 'final') steps.push(`final ${step.code} ${JSON.stringify(step.payload)}`);
      }
      assert.deepEqual(steps, ['progress 0.5 {"step":"half"}', 'final 0 {"installed":true}']);
      const controller = new AbortController();
      const token = uniqueId('mq-abort');
      const pending = ts.request(`mq${version}/hang`, {}, { token, signal: controller.signal, timeout: 30_000 });
      await peer.next((line) => line.event === 'started' && line.token === token, 'the Python handler start');
      controller.abort();
      await assert.rejects(pending, CancelledError);
      await peer.next((line) => line.event === 'cancelled' && line.token === token, 'the Python handler cancelled');

      // TypeScript handler, Python requester.
      const aborted = new EventEmitter();
      await ts.handle(`mqts${version}/echo`, (payload, ctx) => ({ echo: payload, source: ctx.source }));
      await ts.handle(`mqts${version}/hang`, (_payload, ctx) => {
        aborted.emit('started');
        ctx.signal.addEventListener('abort', () => aborted.emit('aborted', ctx.signal.reason));
        return new Promise(() => {});
      });
      await peer.send('wait_for_handler', { action: `mqts${version}/echo`, options: { timeout: 15 } });
      assert.deepEqual(await peer.send('request', { action: `mqts${version}/echo`, payload: [1, 'two'], options: { timeout: 10 } }), { echo: [1, 'two'], source: peer.id });
      await peer.send('wait_for_handler', { action: `mqts${version}/hang`, options: { timeout: 15 } });
      const started = within(once(aborted, 'started'), 15_000, 'the TypeScript handler start');
      const request = peer.start('request', { action: `mqts${version}/hang`, payload: {}, options: { timeout: 30 } });
      await started;
      const abortedThere = within(once(aborted, 'aborted'), 15_000, 'the TypeScript handler abort');
      await peer.send('cancel', { target: request });
      assert.equal((await peer.reply(request)).ok, false);
      const [reason] = (await abortedThere) as [Error];
      assert.ok(reason instanceof CancelledError, String(reason));

      // Notifications both ways.
      const { arrived } = await subscribedForNext(ts, `mq${version}/sensors/+/notification`);
      await peer.send('notify', { category: `mq${version}/sensors/temp`, payload: { c: 19 } });
      const message = await arrived;
      assert.deepEqual([message.envelope.source, message.envelope.payload], [peer.id, { c: 19 }]);
      const subscription = peer.start('subscribe', { filter: `mqts${version}/#` });
      await peer.next((line) => line.event === 'subscribed' && line.sub === subscription, 'the Python subscription in place');
      ts.notify(`mqts${version}/door`, { open: false });
      const got = await peer.next((line) => line.event === 'message' && line.sub === subscription, 'the notification on the Python side');
      assert.deepEqual([got.topic, got.source, got.payload], [`mqts${version}/door/notification`, ts.id, { open: false }]);
    });
  }
});
