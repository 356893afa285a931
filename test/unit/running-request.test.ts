import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { CancelledError, TimeoutError } from '../../src/protocol/errors.js';
import { RunningRequest } from '../../src/client/serving/running-request.js';

describe('running request', () => {
  it('running request - a cancel that came before the handler looked at its signal is still seen', () => {
    const running = new RunningRequest('t1', undefined);
    running.abort(new CancelledError('request t1 cancelled: by the requester'));
    assert.equal(running.aborted, true);
    assert.equal(running.signal.aborted, true);
    assert.ok(running.signal.reason instanceof CancelledError);
  });

  it('running request - a deadline already passed aborts it with a TimeoutError, signal or not', () => {
    const running = new RunningRequest('t2', Date.now() - 1);
    assert.equal(running.aborted, true);
    assert.ok(running.abortReason instanceof TimeoutError);
    assert.match(running.abortReason!.message, /deadline of request t2 passed/);
    assert.equal(running.signal.aborted, true);
  });

  it('running request - a signal read before the deadline fires its abort event when the deadline comes', async () => {
    const running = new RunningRequest('t3', Date.now() + 40);
    const signal = running.signal;
    assert.equal(signal.aborted, false);
    await once(signal, 'abort');
    assert.ok(signal.reason instanceof TimeoutError);
    assert.equal(running.aborted, true);
  });

  it('running request - the first reason wins', () => {
    const running = new RunningRequest('t4', undefined);
    const signal = running.signal;
    running.abort(new CancelledError('first'));
    running.abort(new CancelledError('second'));
    assert.equal((signal.reason as Error).message, 'first');
    assert.equal(running.abortReason?.message, 'first');
  });

  it('running request - one that runs normally reports no reason', () => {
    const running = new RunningRequest('t5', Date.now() + 60_000);
    assert.equal(running.aborted, false);
    assert.equal(running.abortReason, undefined);
    void running.signal;
    running.end();
    assert.equal(running.signal.aborted, false);
  });

  it('running request - a deadline beyond what a Node timer holds (24.8 days) arms no timer, which would fire at once', () => {
    const running = new RunningRequest('t6', Date.now() + 30 * 24 * 3600 * 1000);
    assert.equal(running.signal.aborted, false);
    // White-box: Node turns a delay over 2^31-1 ms into 1 ms, so the only safe timer is none.
    assert.equal((running as unknown as { timer?: unknown }).timer, undefined);
    assert.equal(running.aborted, false);
  });

  it('running request - a signal first read after the handler answered arms no deadline timer', () => {
    const running = new RunningRequest('t7', Date.now() + 60_000);
    running.end();
    assert.equal(running.signal.aborted, false);
    assert.equal((running as unknown as { timer?: unknown }).timer, undefined);
  });
});
