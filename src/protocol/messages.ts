/**
 * One builder per message kind (protocol §3.2): the only place an envelope is put together.
 * Keys come in the documented order, `source` and `token` before `payload`, so a receiver that
 * refuses an oversized message still finds whom to answer in its first KiB (protocol §3.4).
 */
import { EVERYONE, PROTOCOL_VERSION, type Envelope, type Priority } from './envelope.js';
import type { WireError } from './errors.js';
import { frame, splitFrame, type WireBody } from './framing.js';

export function commandMessage(fields: {
  source: string;
  destination: string;
  token: string;
  payload: unknown;
  priority: Priority;
  deadline: number;
  /** Only for a handler that acknowledges (protocol §4.7). */
  acceptBy?: number;
  /** The identity a trusted intermediary (the HTTP API) sends it for (protocol §3.1, §11.2). */
  onBehalfOf?: string;
}): Envelope {
  const command: Envelope = {
    v: PROTOCOL_VERSION,
    type: 'command',
    source: fields.source,
    destination: fields.destination,
    token: fields.token,
    payload: fields.payload ?? {},
    priority: fields.priority,
    deadline: fields.deadline,
    ts: Date.now(),
  };
  if (fields.onBehalfOf !== undefined) command.onBehalfOf = fields.onBehalfOf;
  // Last, so that a command sent again gets a new one without being encoded again.
  if (fields.acceptBy !== undefined) command.acceptBy = fields.acceptBy;
  return command;
}

const ACCEPT_BY_KEY = ',"acceptBy":';

/**
 * A command's wire form with a new `acceptBy` (the command was built with one, written last;
 * in a binary message's header, protocol §3.5).
 */
export function restampAcceptBy(body: string, acceptBy: number): string;
export function restampAcceptBy(body: WireBody, acceptBy: number): WireBody;
export function restampAcceptBy(body: WireBody, acceptBy: number): WireBody {
  if (typeof body !== 'string') {
    const framed = splitFrame(body);
    if (!framed) throw new TypeError('this command carries no acceptBy to renew');
    return frame(restampAcceptBy(framed.headerText, acceptBy), framed.body);
  }
  const at = body.lastIndexOf(ACCEPT_BY_KEY);
  if (at < 0) throw new TypeError('this command carries no acceptBy to renew');
  return `${body.slice(0, at)}${ACCEPT_BY_KEY}${acceptBy}}`;
}

/** What distinguishes the steps of one command's answer (protocol §4.3, §4.7). */
export type ResponseStep =
  | { step: 'accepted'; progress?: number }
  | { step: 'progress'; progress?: number; payload: unknown }
  | { step: 'result'; payload: unknown }
  | { step: 'error'; code: number; error: WireError; notRun?: true };

export function responseMessage(
  fields: { source: string; destination: string; token: string; priority: Priority },
  answer: ResponseStep,
): Envelope {
  // Literal objects, keys in wire order: this runs once per answer (no spread on the hot path).
  const { source, destination, token, priority } = fields;
  const v = PROTOCOL_VERSION;
  switch (answer.step) {
    case 'result':
      return { v, type: 'response', source, destination, token, final: true, payload: answer.payload ?? null, code: 0, priority, ts: Date.now() };
    case 'accepted':
      return answer.progress === undefined
        ? { v, type: 'response', source, destination, token, final: false, accepted: true, payload: null, priority, ts: Date.now() }
        : { v, type: 'response', source, destination, token, final: false, accepted: true, payload: null, progress: answer.progress, priority, ts: Date.now() };
    case 'progress':
      return answer.progress === undefined
        ? { v, type: 'response', source, destination, token, final: false, payload: answer.payload ?? null, priority, ts: Date.now() }
        : { v, type: 'response', source, destination, token, final: false, payload: answer.payload ?? null, progress: answer.progress, priority, ts: Date.now() };
    case 'error':
      return answer.notRun
        ? { v, type: 'response', source, destination, token, final: true, payload: null, code: answer.code, error: answer.error, accepted: false, priority, ts: Date.now() }
        : { v, type: 'response', source, destination, token, final: true, payload: null, code: answer.code, error: answer.error, priority, ts: Date.now() };
  }
}

export function cancelMessage(fields: { source: string; destination: string; token: string; reason: string; priority: Priority; onBehalfOf?: { requester: string; by: string } }): Envelope {
  return {
    v: PROTOCOL_VERSION,
    type: 'cancel',
    source: fields.source,
    destination: fields.destination,
    token: fields.token,
    payload: fields.onBehalfOf ? { reason: fields.reason, ...fields.onBehalfOf } : { reason: fields.reason },
    priority: fields.priority,
    ts: Date.now(),
  };
}

export function notificationMessage(fields: { source: string; destination?: string; payload: unknown; priority: Priority; deadline?: number }): Envelope {
  return {
    v: PROTOCOL_VERSION,
    type: 'notification',
    source: fields.source,
    destination: fields.destination ?? EVERYONE,
    payload: fields.payload,
    priority: fields.priority,
    ...(fields.deadline !== undefined && { deadline: fields.deadline }),
    ts: Date.now(),
  };
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export function logMessage(fields: { source: string; level: LogLevel; message: string; data?: unknown }): Envelope {
  return {
    v: PROTOCOL_VERSION,
    type: 'log',
    source: fields.source,
    destination: EVERYONE,
    payload: { level: fields.level, message: fields.message, ...(fields.data !== undefined && { data: fields.data }) },
    priority: 'normal',
    ts: Date.now(),
  };
}

/** A presence (protocol §7.1): a notification with no priority, retained on `relais/presence/<id>`. */
export function presenceMessage(source: string, info: Record<string, unknown>): Envelope {
  return { v: PROTOCOL_VERSION, type: 'notification', source, destination: EVERYONE, payload: info, ts: Date.now() };
}
