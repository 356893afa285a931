import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OutboundQueue, type Queued } from '../../src/client/connection/outbound-queue.js';
import { NotSentError } from '../../src/protocol/errors.js';

type Message = Queued & { id: string };
const message = (id: string, priority: Queued['priority'], extra: Partial<Message> = {}): Message => ({ id, topic: `t/${id}`, priority, ...extra });

describe('outbound queue', () => {
  it('outbound queue - drains in priority order, first in first out within a priority', () => {
    const queue = new OutboundQueue<Message>();
    for (const [id, priority] of [['n1', 'normal'], ['l1', 'low'], ['h1', 'high'], ['n2', 'normal'], ['r1', 'realtime'], ['h2', 'high']] as const) queue.push(message(id, priority));
    const written: string[] = [];
    queue.drain((m) => (written.push(m.id), true));
    assert.deepEqual(written, ['r1', 'h1', 'h2', 'n1', 'n2', 'l1']);
    assert.equal(queue.size, 0);
  });

  it('outbound queue - a refusal stops that priority and leaves the rest in order for later', () => {
    const queue = new OutboundQueue<Message>();
    for (const id of ['a', 'b', 'c']) queue.push(message(id, 'normal'));
    queue.push(message('r', 'realtime'));
    const written: string[] = [];
    queue.drain((m) => (m.id === 'b' ? false : (written.push(m.id), true)));
    assert.deepEqual(written, ['r', 'a']);
    assert.equal(queue.size, 2);
    queue.drain((m) => (written.push(m.id), true));
    assert.deepEqual(written, ['r', 'a', 'b', 'c']);
  });

  it('outbound queue - expired messages are dropped, never written late, and their senders told', () => {
    const queue = new OutboundQueue<Message>();
    const dropped: string[] = [];
    queue.push(message('late', 'normal', { deadline: 1000, onDropped: (error) => dropped.push(error.message) }));
    queue.push(message('fine', 'normal', { deadline: 5000 }));
    const written: string[] = [];
    queue.drain((m) => (written.push(m.id), true), 2000);
    assert.deepEqual(written, ['fine']);
    assert.match(dropped[0] ?? '', /deadline passed before t\/late could be sent/);
  });

  it('outbound queue - bounded when asked: the message past the limit is refused with NotSentError', () => {
    const queue = new OutboundQueue<Message>();
    queue.push(message('a', 'normal'), 2);
    queue.push(message('b', 'normal'), 2);
    assert.throws(() => queue.push(message('c', 'normal'), 2, 'offline queue full'), (error: unknown) => error instanceof NotSentError && /offline queue full \(2 messages\)/.test(error.message));
    assert.equal(queue.size, 2);
  });

  it('outbound queue - clear tells every sender', () => {
    const queue = new OutboundQueue<Message>();
    const told: string[] = [];
    queue.push(message('a', 'low', { onDropped: () => told.push('a') }));
    queue.push(message('b', 'high', { onDropped: () => told.push('b') }));
    queue.clear(() => new NotSentError('closed'));
    assert.deepEqual(told.sort(), ['a', 'b']);
    assert.equal(queue.size, 0);
  });
});
