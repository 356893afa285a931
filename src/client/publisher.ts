/**
 * What a client publishes that is not a request or an answer: notifications (protocol §8.1),
 * log records (§8.2) and ready-made messages on any topic (`relais pub`). Each is checked and
 * encoded once, before anything is queued.
 */
import { encodeMessage, encodeWire, type Envelope } from '../protocol/envelope.js';
import { NotSentError, SealingError } from '../protocol/errors.js';
import { logMessage, notificationMessage, type LogLevel } from '../protocol/messages.js';
import { checkTopicName, logTopic, notificationTopic } from '../protocol/topics.js';
import type { ResolvedOptions } from './options.js';
import type { Transport } from './connection/index.js';
import type { Sealing } from './sealing.js';
import type { SendOptions } from './types.js';

export class Publisher {
  constructor(
    private readonly options: ResolvedOptions,
    private readonly transport: Transport,
    /** Why nothing may be sent any more, or undefined while the client runs. */
    private readonly closedBecause: () => string | undefined,
    /** What seals a notification for its `sealFor` identities (protocol §3.6). */
    private readonly sealing?: Sealing,
  ) {}

  notify(category: string, payload: unknown, options: SendOptions & { destination?: string; sealFor?: readonly string[] }): void {
    const plain = notificationMessage({
      source: this.options.id,
      payload,
      priority: options.priority ?? 'normal',
      ...(options.destination !== undefined && { destination: options.destination }),
      ...(options.deadline !== undefined && { deadline: options.deadline }),
    });
    const topic = notificationTopic(category);
    this.checkOpen();
    this.sendEnvelope(topic, options.sealFor === undefined ? plain : this.sealed(plain, options.sealFor), options);
  }

  log(category: string, level: LogLevel, message: string, data?: unknown): void {
    this.sendEnvelope(logTopic(category), logMessage({ source: this.options.id, level, message, ...(data !== undefined && { data }) }), {});
  }

  publish(topic: string, message: unknown, options: SendOptions & { retain?: boolean; qos?: 0 | 1 }): void {
    this.checkOpen();
    const problem = checkTopicName(topic);
    if (problem) throw new TypeError(problem);
    const body = encodeWire(message, { maxBytes: this.options.maxMessageBytes, what: () => `the message for ${topic}` });
    this.transport.send({ topic, body, qos: options.qos ?? 1, priority: options.priority ?? 'normal', ...(options.retain && { retain: true }), ...(options.deadline !== undefined && { deadline: options.deadline }) });
  }

  private sendEnvelope(topic: string, envelope: Envelope, options: SendOptions): void {
    this.checkOpen();
    const body = encodeMessage(envelope, { maxBytes: this.options.maxMessageBytes, what: () => `the ${envelope.type} for ${topic}` });
    this.transport.send({ topic, body, qos: 1, priority: envelope.priority ?? 'normal', ...(options.deadline !== undefined && { deadline: options.deadline }) });
  }

  /** A notification sealed for each of `identities` (protocol §3.6); throws `SealingError` for one without a key. */
  private sealed(envelope: Envelope, identities: readonly string[]): Envelope {
    if (!Array.isArray(identities) || identities.length === 0 || identities.some((identity) => typeof identity !== 'string')) throw new TypeError('sealFor must be a non-empty list of identities');
    if (!this.sealing) throw new SealingError('this runtime cannot seal (protocol §3.6): sealing works in Node');
    return this.sealing.seal(envelope, identities);
  }

  private checkOpen(): void {
    const closed = this.closedBecause();
    if (closed !== undefined) throw new NotSentError(closed);
  }
}
