/**
 * What a client publishes that is not a request or an answer: notifications (protocol §8.1),
 * log records (§8.2) and ready-made messages on any topic (`relais pub`). Each is checked and
 * encoded once, before anything is queued.
 */
import { encode, encodeJson, type Envelope } from '../protocol/envelope.js';
import { NotSentError } from '../protocol/errors.js';
import { logMessage, notificationMessage, type LogLevel } from '../protocol/messages.js';
import { checkTopicName, logTopic, notificationTopic } from '../protocol/topics.js';
import type { ResolvedOptions } from './options.js';
import type { Transport } from './connection/index.js';
import type { SendOptions } from './types.js';

export class Publisher {
  constructor(
    private readonly options: ResolvedOptions,
    private readonly transport: Transport,
    /** Why nothing may be sent any more, or undefined while the client runs. */
    private readonly closedBecause: () => string | undefined,
  ) {}

  notify(category: string, payload: unknown, options: SendOptions & { destination?: string }): void {
    const envelope = notificationMessage({
      source: this.options.id,
      payload,
      priority: options.priority ?? 'normal',
      ...(options.destination !== undefined && { destination: options.destination }),
      ...(options.deadline !== undefined && { deadline: options.deadline }),
    });
    this.sendEnvelope(notificationTopic(category), envelope, options);
  }

  log(category: string, level: LogLevel, message: string, data?: unknown): void {
    this.sendEnvelope(logTopic(category), logMessage({ source: this.options.id, level, message, ...(data !== undefined && { data }) }), {});
  }

  publish(topic: string, message: unknown, options: SendOptions & { retain?: boolean; qos?: 0 | 1 }): void {
    this.checkOpen();
    const problem = checkTopicName(topic);
    if (problem) throw new TypeError(problem);
    const body = encodeJson(message, { maxBytes: this.options.maxMessageBytes, what: () => `the message for ${topic}` });
    this.transport.send({ topic, body, qos: options.qos ?? 1, priority: options.priority ?? 'normal', ...(options.retain && { retain: true }), ...(options.deadline !== undefined && { deadline: options.deadline }) });
  }

  private sendEnvelope(topic: string, envelope: Envelope, options: SendOptions): void {
    this.checkOpen();
    const body = encode(envelope, { maxBytes: this.options.maxMessageBytes, what: () => `the ${envelope.type} for ${topic}` });
    this.transport.send({ topic, body, qos: 1, priority: envelope.priority ?? 'normal', ...(options.deadline !== undefined && { deadline: options.deadline }) });
  }

  private checkOpen(): void {
    const closed = this.closedBecause();
    if (closed !== undefined) throw new NotSentError(closed);
  }
}
