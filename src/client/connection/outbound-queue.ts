/**
 * Messages waiting to be written (protocol §6.1, §6.3): one FIFO per priority, drained in
 * priority order. Pure: it knows neither sockets nor MQTT; the transport says, message by
 * message, whether and where it can be written now.
 */
import { PRIORITIES, type Priority } from '../../protocol/envelope.js';
import { NotSentError } from '../../protocol/errors.js';

export interface Queued {
  topic: string;
  priority: Priority;
  /** Epoch ms after which the message is useless: dropped instead of sent late. */
  deadline?: number;
  /** Told when the message is dropped instead of sent (deadline passed, client closed). */
  onDropped?: (error: NotSentError) => void;
}

export class OutboundQueue<M extends Queued> {
  private readonly queues: Record<Priority, M[]> = { realtime: [], high: [], normal: [], low: [] };
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds a message; with `limit`, refuses it with `NotSentError` once `limit` are waiting. */
  push(message: M, limit = Infinity, why = 'the outbound queue is full'): void {
    if (this.count >= limit) throw new NotSentError(`${why} (${limit} messages)`);
    this.queues[message.priority].push(message);
    this.count += 1;
  }

  /**
   * Hands messages to `writer(message)` in priority order, oldest first within a priority.
   * `writer` answers whether the message was taken; the first refusal stops that priority
   * (its lane is down or its socket full) and the drain moves on to the next one. Expired
   * messages are dropped on the way and their senders told.
   */
  drain(writer: (message: M) => boolean, now = Date.now()): void {
    if (this.count === 0) return;
    for (const priority of PRIORITIES) {
      const queue = this.queues[priority];
      while (queue.length > 0) {
        const message = queue[0]!;
        if (message.deadline !== undefined && message.deadline <= now) {
          queue.shift();
          this.count -= 1;
          message.onDropped?.(new NotSentError(`deadline passed before ${message.topic} could be sent (disconnected or backlogged)`));
          continue;
        }
        if (!writer(message)) break;
        queue.shift();
        this.count -= 1;
      }
    }
  }

  /** Empties the queue, telling every sender why. */
  clear(error: () => NotSentError): void {
    for (const priority of PRIORITIES) {
      for (const message of this.queues[priority].splice(0)) message.onDropped?.(error());
    }
    this.count = 0;
  }
}
