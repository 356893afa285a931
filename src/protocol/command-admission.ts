/**
 * What a handler does with a message on one of its request topics (protocol §4.2): the checks
 * of the protocol's table, in its order, as one pure function of the message, the time and what
 * the handler serves and remembers. Its verdict: drop it (with a log line, and an error answer
 * when the sender can be answered, the handler not run), answer a duplicate from what is
 * remembered (§4.8), or run the handler. The serving side's shell (the Node client's
 * `Handlers`) acts on it.
 */
import { EVERYONE, type DecodeResult, type Envelope, type Priority } from './envelope.js';
import { ResponseCode, toWire, type WireError } from './errors.js';
import { checkClientId } from './topics.js';

/** Where the answers to one command go, and how (protocol §4.3). */
export interface ReplyTo {
  action: string;
  requester: string;
  token: string;
  priority: Priority;
  /** Answers travel at the QoS the command came with (protocol §1.3). */
  qos: 0 | 1;
  /** The command came sealed: its answers' payloads go back sealed for the requester (protocol §3.6). */
  sealed?: boolean;
}

/** How an action is served here: not at all, not yet (the client is starting, §7.1), on every request topic, or only when targeted (§11.4). */
export type Serving = 'no' | 'starting' | 'yes' | 'targeted-only';

/** What the handler knows, read by the checks. */
export interface ServingView {
  /** This client's id. */
  readonly self: string;
  serving(action: string): Serving;
  /** Whether the command `key` (`<requester> <token>`) runs here, or finished and is remembered (protocol §4.8). */
  knows(key: string): boolean;
}

export interface AdmissionLog {
  level: 'warn' | 'debug';
  message: string;
  fields: Record<string, unknown>;
}

export type Admission =
  /** Not run. `answer`: the error response to send, when the sender can be answered. */
  | { kind: 'drop'; log: AdmissionLog; answer?: { to: ReplyTo; code: number; error: WireError; notRun?: true } }
  /** The same command again: answered from what is remembered of it (protocol §4.8). */
  | { kind: 'duplicate'; to: ReplyTo; key: string; wantsAcks: boolean }
  /** Run the handler. `wantsAcks`: the command carries `acceptBy`, its requester waits for an acknowledgement (§4.7). */
  | { kind: 'run'; to: ReplyTo; key: string; command: Envelope; wantsAcks: boolean };

/**
 * The checks of protocol §4.2, in order, for what arrived on `<action>/request` (`targeted`:
 * on `<action>/request/<me>`) at QoS `qos`, at `now`. `newToken` names the answers of a command
 * that carries no token.
 */
export function admitCommand(action: string, targeted: boolean, decoded: DecodeResult, qos: 0 | 1, now: number, view: ServingView, newToken: () => string): Admission {
  if (!decoded.ok) {
    const log: AdmissionLog = { level: 'warn', message: 'invalid request', fields: { action, err: decoded.error.message, source: decoded.sender?.source } };
    if (!decoded.sender) return { kind: 'drop', log };
    const { responseCode, error } = toWire(decoded.error);
    return { kind: 'drop', log, answer: { to: { action, requester: decoded.sender.source, token: decoded.sender.token ?? 'none', priority: 'normal', qos }, code: responseCode, error } };
  }
  const command = decoded.envelope;
  if (command.type !== 'command') return drop('warn', 'ignored a non-command message on a request topic', { action, type: command.type, source: command.source });
  if (!targeted && command.destination !== EVERYONE && command.destination !== view.self) return drop('debug', 'command for another destination ignored', { action, destination: command.destination });
  const badSource = checkClientId(command.source);
  if (badSource) return drop('warn', `command refused, no response possible: ${badSource}`, { action, source: command.source });
  const to: ReplyTo = { action, requester: command.source, token: command.token ?? newToken(), priority: command.priority ?? 'normal', qos };
  // A starting client serves nothing yet but its built-in actions (its logs help to see why it is slow to start).
  const serving = view.serving(action);
  if (serving === 'no' || serving === 'starting') {
    return refuse(to, ResponseCode.NO_HANDLER, { name: 'NoHandlerError', message: `${view.self} does not serve ${action}${serving === 'starting' ? ' yet: it is starting' : ''}` });
  }
  if (serving === 'targeted-only' && !targeted) return drop('debug', 'untargeted command for a built-in action ignored (protocol §11.4)', { action, source: command.source });
  const key = `${to.requester} ${to.token}`;
  const wantsAcks = command.acceptBy !== undefined;
  if (view.knows(key)) return { kind: 'duplicate', to, key, wantsAcks };
  if (command.deadline !== undefined && command.deadline <= now) {
    return refuse(to, ResponseCode.DEADLINE_EXCEEDED, { name: 'TimeoutError', message: `request ${to.token} arrived after its deadline` });
  }
  if (command.acceptBy !== undefined && command.acceptBy < now) {
    // The requester has sent it elsewhere by now, or asks about a command not known here
    // (acceptBy 0): running it could run it twice (protocol §4.7).
    const late = now - command.acceptBy;
    const message = command.acceptBy === 0
      ? `request ${to.token} is not known here (finished and forgotten, or never received); it was not run`
      : `request ${to.token} reached ${view.self} ${late} ms after its acceptance deadline; it was not run (if this keeps happening, check that the clocks agree)`;
    return {
      kind: 'drop',
      log: { level: 'warn', message: 'command not accepted', fields: { action, token: to.token, requester: to.requester, lateMs: late } },
      answer: { to, code: ResponseCode.DEADLINE_EXCEEDED, error: { name: 'TimeoutError', message }, notRun: true },
    };
  }
  return { kind: 'run', to, key, command, wantsAcks };
}

function drop(level: AdmissionLog['level'], message: string, fields: Record<string, unknown>): Admission {
  return { kind: 'drop', log: { level, message, fields } };
}

function refuse(to: ReplyTo, code: number, error: WireError): Admission {
  return { kind: 'drop', log: { level: 'warn', message: 'request refused', fields: { action: to.action, token: to.token, requester: to.requester, err: error.message } }, answer: { to, code, error } };
}
