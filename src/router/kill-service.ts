/**
 * Kill (seed 002's KILL), relayed by the router (protocol §11.5): any allowed client cancels a
 * running request by its token alone, even one whose requester has gone away. The router finds
 * the request in the history and sends the cancel to its handler on the requester's behalf.
 */
import { z } from 'zod';
import type { Bus } from '../client/bus.js';
import type { HandlerContext, Registration } from '../client/types.js';
import { InvalidMessageError, NotAuthorizedError } from '../protocol/errors.js';
import { endsLifecycle, parseHistoryQuery } from '../protocol/history.js';
import { cancelMessage } from '../protocol/messages.js';
import { cancelTopic } from '../protocol/topics.js';
import type { HistoryStore } from './history-store.js';
import { parsed } from './history-service.js';

export const KILL_ACTION = 'relais/requests/kill';

const killSchema = z.object({ token: z.string().min(1).max(1024), reason: z.string().max(1024).optional() }).strict();

export interface KillResult {
  killed: true;
  token: string;
  action: string;
  requester: string;
  /** The handler the cancel was sent to, or `*` when the history does not say which one took it. */
  handler: string;
  by: string;
}

export interface KillOptions {
  /** Client ids allowed to kill anyone's request; everyone else only their own. */
  admins: readonly string[];
}

export function serveKill(bus: Bus, store: HistoryStore, options: KillOptions): Promise<Registration> {
  return bus.handle(KILL_ACTION, (payload: unknown, ctx) => kill(bus, store, parsed(() => killSchema.parse(payload)), ctx, options));
}

function kill(bus: Bus, store: HistoryStore, input: z.output<typeof killSchema>, ctx: HandlerContext, options: KillOptions): KillResult {
  const rows = store.query(parseHistoryQuery({ token: input.token, limit: 10_000 })).rows;
  const command = rows.find((row) => row.kind === 'command');
  if (!command) throw new InvalidMessageError(`token ${input.token} is not in the history: nothing to kill`);
  const ended = rows.find(endsLifecycle);
  if (ended) throw new InvalidMessageError(`request ${input.token} has already ended (${ended.kind}${ended.code === undefined ? '' : `, code ${ended.code}`})`);
  const requester = command.source;
  if (ctx.source !== requester && !options.admins.includes(ctx.source)) {
    throw new NotAuthorizedError(`request ${input.token} was sent by ${requester}: only it or an administrator may kill it`);
  }
  // The handler that answered it; else the one it was sent to; else whoever serves it.
  const answered = [...rows].reverse().find((row) => row.kind === 'accepted' || row.kind === 'progress');
  const handler = answered?.source ?? (command.target && command.target !== '*' ? command.target : '*');
  const reason = input.reason ?? `killed by ${ctx.source}`;
  // The handler knows the request by the client that sent it: the intermediary, when one sent it for the requester (protocol §11.1 `via`).
  const envelope = cancelMessage({ source: bus.id, destination: handler, token: input.token, reason, priority: 'high', onBehalfOf: { requester: command.via ?? requester, by: ctx.source } });
  bus.publish(cancelTopic(command.action), envelope, { qos: 1 });
  return { killed: true, token: input.token, action: command.action, requester, handler, by: ctx.source };
}
