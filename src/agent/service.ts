/**
 * What every agent service is (docs/agent.md): a module that serves its actions on the bus,
 * lists what it sees as components (`system/components/discover`), and stops cleanly.
 */
import type { Logger } from 'pino';
import type { Bus, Handler, HandlerContext } from '../client/index.js';
import type { Contract } from '../client/serving/index.js';
import type { z } from 'zod';
import { RelaisError } from '../protocol/errors.js';

/** One entry of `system/components/discover` (docs/agent.md "Components"). */
export interface Component {
  id: string;
  label: string;
  type: string;
}

/** An action with its contract (protocol §7.6): PSEC's payload and answer shapes, checked by the library. */
export interface TypedAction extends Contract {
  handler: Handler;
}

export interface AgentService {
  /** Its name in the config (`services.<name>`) and in presence (`info.services`). */
  readonly name: string;
  /** The actions it serves, by name: typed (the norm) or a bare handler. */
  readonly actions: Record<string, TypedAction | Handler>;
  /** Starts what runs beside the actions (a watcher). */
  start?(): Promise<void> | void;
  components?(): Component[] | Promise<Component[]>;
  stop?(): Promise<void> | void;
}

/** PSEC's error notification (`system/events/error/notification`; docs/agent.md), level 3 = error as in syslog. */
export const ERROR_CATEGORY = 'system/events/error';
export const ERROR_LEVEL = 3;

/** What a service gets from the agent. */
export interface ServiceContext {
  bus: Bus;
  logger: Logger;
  /** Says on the bus that a service failed (PSEC's `TypeEvenement.ERREUR`), and logs it. */
  reportError(module: string, description: string): void;
}

export function errorReporter(bus: Bus, logger: Logger): ServiceContext['reportError'] {
  return (module, description) => {
    logger.error({ module }, description);
    try {
      bus.notify(ERROR_CATEGORY, { module, datetime: new Date().toISOString(), level: ERROR_LEVEL, description });
    } catch (error) {
      logger.warn({ module, err: (error as Error).message }, 'error notification not sent');
    }
  };
}

/**
 * Wraps a handler so that a failure that is not the requester's doing (an I/O error, a bug)
 * is also announced as a service error. Refusals (a RelaisError naming a bad request) are
 * the requester's business and only go back to it.
 */
export function reportingFailures(module: string, action: string, handler: Handler, context: ServiceContext): Handler {
  return async (payload, ctx) => {
    try {
      return await handler(payload, ctx);
    } catch (error) {
      if (!(error instanceof RelaisError)) context.reportError(module, `${action} failed: ${(error as Error).message}`);
      throw error;
    }
  };
}

/** An action whose handler gets the payload as `input` parses it, and answers as `output` says. */
export function typed<I extends z.ZodType, O extends z.ZodType>(description: string, input: I, output: O, handler: (payload: z.output<I>, ctx: HandlerContext) => Promise<z.input<O>>): TypedAction {
  return { description, input, output, handler };
}

/** Serves `action` of a service on `bus`, with its contract when it declares one. */
export function serveAction(bus: Bus, action: string, served: TypedAction | Handler): Promise<unknown> {
  if (typeof served === 'function') return bus.handle(action, served);
  const { handler, ...contract } = served;
  return bus.handle(action, handler, contract);
}
