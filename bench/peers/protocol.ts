/**
 * The lines between the peers benchmark (parent) and one of its peer processes (child):
 * one JSON object per line, commands on the child's stdin, replies on its stdout. Pure: no
 * I/O here, so the parent and every child share one definition.
 *
 *   child  → {"peer":"ready","pid":123,"url":"tcp://…"}         once connected and serving / found its handler
 *   parent → {"cmd":"warmup","count":300,"capMs":1000,"inFlight":100,"loadMs":1000}   requester: untimed round trips, then an untimed load
 *   parent → {"cmd":"sequential","count":1500,"capMs":5000}    requester: one at a time, until count or capMs
 *   parent → {"cmd":"load","inFlight":100,"durationMs":2500}   requester: inFlight at a time for durationMs
 *   parent → {"cmd":"count"}                                   handler: how many requests it served
 *   child  → {"peer":"done","cmd":…}                           one reply per command (see PhaseReply, CountReply)
 *   child  → {"peer":"error","message":…}                      a command (or the start) failed
 *   parent closes stdin → child closes its connections, prints {"peer":"result",…} and exits
 *
 * Any other line a child prints (a library's log line) is not a protocol line: the parent
 * passes it on to stderr.
 */

export type Role = 'requester' | 'handler';

export type Command =
  | { cmd: 'warmup'; count: number; capMs: number; inFlight: number; loadMs: number }
  | { cmd: 'sequential'; count: number; capMs: number }
  | { cmd: 'load'; inFlight: number; durationMs: number }
  | { cmd: 'count' }
  // The idle scenario's fleet (idle-fleet.ts): connect its clients; report its memory and CPU.
  | { cmd: 'fleet-connect' }
  | { cmd: 'fleet-stats' }
  // The pub/sub scenario's processes (pubsub-child.ts): count a run, publish it, report what came.
  | { cmd: 'ps-arm'; run: string; count: number }
  | { cmd: 'ps-publish'; run: string; fanout: number; count: number; chunk: number }
  | { cmd: 'ps-collect'; idleMs: number; capMs: number };

/** What a requester sent and got back since it started: the honesty check of every row. */
export interface Totals {
  sent: number;
  received: number;
  /** Responses whose payload was not the request's payload echoed. */
  bad: number;
}

export interface ReadyReply {
  peer: 'ready';
  pid: number;
  /** Where a handler that is its own server (the TCP floor, a broker child) listens. */
  url?: string;
}

export interface PhaseReply {
  peer: 'done';
  cmd: 'warmup' | 'sequential' | 'load';
  /** Round-trip times in ms (none for a warm-up). */
  samples: number[];
  /** Requests completed: all of them, or for `load` those completed inside the window. */
  completed: number;
  /** `load`: the window in ms (durationMs as measured). */
  windowMs: number;
  /** Wall time of the whole phase in ms, the tail of a load included. */
  elapsedMs: number;
  /** CPU (user + system) this process used during the phase, in ms. */
  cpuMs: number;
  totals: Totals;
}

export interface CountReply {
  peer: 'done';
  cmd: 'count';
  served: number;
}

export interface ErrorReply {
  peer: 'error';
  cmd?: string;
  message: string;
  totals?: Totals;
}

export interface ResultReply {
  peer: 'result';
  totals?: Totals;
  served?: number;
}

/** A fleet process of the idle scenario (idle-fleet.ts): its clients, memory and CPU so far. */
export interface FleetReply {
  peer: 'fleet';
  cmd: 'fleet-connect' | 'fleet-stats';
  pid: number;
  connected: number;
  failed: number;
  /** The first few connect failures. */
  errors: string[];
  /** Epoch ms when the first connect began and the last one resolved. */
  firstAt?: number;
  lastAt?: number;
  rssBytes: number;
  heapBytes: number;
  /** CPU (user + system) of the process since it started. */
  cpuMs: number;
  /** The smallest directory (bus.clients().length) among a sample of its clients. */
  directoryMin: number;
}

/** A pub/sub process (pubsub-child.ts): times are epoch ms with fractions (performance.timeOrigin + now()), CPU in ms over the command. */
export interface PubSubReply {
  peer: 'pubsub';
  cmd: 'ps-arm' | 'ps-publish' | 'ps-collect';
  cpuMs: number;
  /** ps-publish: when the first message was handed to the library, and the last. */
  startAt?: number;
  /** ps-publish: the last handed over; ps-collect: the last message received. */
  endAt?: number;
  /** ps-collect. */
  received?: number;
  distinct?: number;
  firstAt?: number;
}

export type Reply = ReadyReply | PhaseReply | CountReply | ErrorReply | ResultReply | FleetReply | PubSubReply;

export function encodeLine(message: Command | Reply): string {
  return `${JSON.stringify(message)}\n`;
}

/** The protocol message on `line`, or undefined when the line is something else (a log line). */
export function parseReply(line: string): Reply | undefined {
  if (!line.startsWith('{"peer":')) return undefined;
  try {
    return JSON.parse(line) as Reply;
  } catch {
    return undefined;
  }
}

export function parseCommand(line: string): Command | undefined {
  try {
    const command = JSON.parse(line) as Command;
    return typeof command === 'object' && command !== null && typeof command.cmd === 'string' ? command : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The echoed payload: ~100 bytes of JSON, with a number unique per request so an echo can
 * be told from a stale or crossed answer.
 */
export interface EchoPayload {
  n: number;
  text: string;
}

const TEXT = 'relais peers benchmark: a payload of about one hundred bytes, echoed back';

export function makePayload(n: number): EchoPayload {
  return { n, text: TEXT };
}

export function isEcho(sent: EchoPayload, received: unknown): boolean {
  if (typeof received !== 'object' || received === null) return false;
  const got = received as Partial<EchoPayload>;
  return got.n === sent.n && got.text === sent.text;
}
