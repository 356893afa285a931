/**
 * Remote commands with live output (Gorgone's COMMAND; docs/agent.md "Remote commands"):
 * `system/command/run` runs one allowed command, `system/command/batch` several in order as
 * Gorgone does (`[{command, timeout, continue_on_error}]`). Output lines are progress steps;
 * the final answer carries the exit code, the duration and the tail of the output.
 */
import { z } from 'zod';
import type { HandlerContext } from '../client/index.js';
import { BusyError, CancelledError, InvalidMessageError, RelaisError, TimeoutError } from '../protocol/errors.js';
import { allow, describeCommand, type AllowedCommand, type CommandLine } from './allow-list.js';
import type { CommandConfig } from './config.js';
import { runProcess, SpawnError, type OutputStep, type RunOutcome } from './process-runner.js';
import { typed, type AgentService, type ServiceContext } from './service.js';

export const REMOTE_COMMAND_ACTIONS = { run: 'system/command/run', batch: 'system/command/batch' } as const;

const commandLine = z.union([z.array(z.string().max(64 * 1024)).min(1).max(1000), z.string().min(1).max(64 * 1024)]);
const item = z.object({ command: commandLine, timeout: z.number().positive().optional(), continue_on_error: z.boolean().default(false) });
const runSchema = item.omit({ continue_on_error: true });
const batchSchema = z.union([z.array(item).min(1).max(100), z.object({ commands: z.array(item).min(1).max(100) }).transform((value) => value.commands)]);

/** A command's result (the final answer of run, each entry of batch's), as its contract says (protocol §7.6). */
const resultSchema = z.object({
  command: z.string(),
  rule: z.string(),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  durationMs: z.number().min(0),
  outputBytes: z.number().int().min(0),
  truncated: z.boolean(),
  tail: z.array(z.object({ stream: z.enum(['stdout', 'stderr']), line: z.string() })),
  timedOut: z.boolean(),
  killed: z.object({ reason: z.enum(['timeout', 'cancelled']), signals: z.array(z.string()) }).optional(),
});
const batchResultSchema = z.object({ results: z.array(resultSchema), completed: z.boolean(), stoppedAt: z.number().int().min(0).optional() });

/** One command's result in a final answer. */
export type CommandResult = { command: string; rule: string } & Omit<RunOutcome, 'killed'> & { timedOut: boolean; killed?: RunOutcome['killed'] };

/**
 * The error answer of a killed command, keeping what it did in `details`: code 6 for a
 * time-out (its own or the requester's deadline), code 5 for a cancellation (protocol §4.4).
 */
function endedError(killedBy: 'timeout' | 'cancelled' | 'deadline', message: string, details: unknown): RelaisError {
  const error = killedBy === 'cancelled' ? new CancelledError(message) : new TimeoutError(message);
  Object.defineProperty(error, 'details', { value: details, enumerable: true });
  return error;
}

export function remoteCommandService(config: CommandConfig, context: ServiceContext): AgentService {
  let running = 0;
  const limits = { maxOutputBytes: config.maxOutputBytes, tailBytes: config.tailBytes, killGraceMs: config.killGrace * 1000 };

  const check = (command: CommandLine, ctx: HandlerContext): AllowedCommand => {
    try {
      return allow(command, config.rules, config.ruleSet);
    } catch (error) {
      context.logger.warn({ ruleSet: config.ruleSet, requester: ctx.source, token: ctx.token, command: describeCommand(command) }, `command refused: no rule of the rule set ${config.ruleSet} allows it`);
      throw error;
    }
  };
  const timeoutOf = (seconds: number | undefined, field: string): number => {
    const chosen = seconds ?? config.defaultTimeout;
    if (chosen > config.maxTimeout) throw new InvalidMessageError(`${field}: ${chosen} s is over this agent's maxTimeout (${config.maxTimeout} s)`);
    return chosen * 1000;
  };
  /** Runs one command, its output as progress steps (with `index` in a batch). */
  const execute = async (allowed: AllowedCommand, command: CommandLine, timeoutMs: number, ctx: HandlerContext, index?: number): Promise<CommandResult> => {
    const emit = (step: OutputStep) => {
      ctx.progress(undefined, index === undefined ? step : { index, ...step });
      return ctx.drained();
    };
    context.logger.info({ rule: allowed.rule, requester: ctx.source, token: ctx.token, command: describeCommand(command) }, 'command started');
    let outcome: RunOutcome;
    try {
      outcome = await runProcess(allowed, { timeoutMs, signal: ctx.signal, limits, emit });
    } catch (error) {
      if (!(error instanceof SpawnError)) throw error;
      throw new RelaisError('SPAWN_FAILED', error.message, { details: { reason: 'spawn-failed', errno: error.errno } });
    }
    const result: CommandResult = { command: describeCommand(command), rule: allowed.rule, ...outcome, timedOut: outcome.killed?.reason === 'timeout' };
    context.logger.info({ rule: allowed.rule, token: ctx.token, exitCode: outcome.exitCode, signal: outcome.signal, killed: outcome.killed?.reason }, 'command ended');
    return result;
  };
  const withSlot = async <T>(work: () => Promise<T>): Promise<T> => {
    if (running >= config.maxRunning) throw new BusyError(`this agent runs ${config.maxRunning} commands already (services.command.maxRunning); try again later`);
    running += 1;
    try {
      return await work();
    } finally {
      running -= 1;
    }
  };
  /** Why a killed command was killed: its time-out, the requester's deadline, or a cancel. */
  const killedBy = (result: CommandResult, ctx: HandlerContext) =>
    result.killed!.reason === 'timeout' ? 'timeout' : ctx.signal.reason instanceof TimeoutError ? 'deadline' : 'cancelled';
  const killedError = (result: CommandResult, seconds: number, ctx: HandlerContext, details: unknown) => {
    const why = killedBy(result, ctx);
    const what = why === 'timeout' ? `timed out after ${seconds} s` : why === 'deadline' ? "ran past the requester's deadline" : 'was cancelled';
    return endedError(why, `${result.command} ${what}: its process group was killed (${result.killed!.signals.join(', ') || 'it had already ended'})`, details);
  };

  return {
    name: 'command',
    actions: {
      [REMOTE_COMMAND_ACTIONS.run]: typed('runs one allowed command; its output lines are progress steps', runSchema, resultSchema, async (request, ctx) => {
        const allowed = check(request.command, ctx);
        const timeoutMs = timeoutOf(request.timeout, 'timeout');
        return withSlot(async () => {
          const result = await execute(allowed, request.command, timeoutMs, ctx);
          if (result.killed) throw killedError(result, timeoutMs / 1000, ctx, result);
          return result;
        });
      }),

      [REMOTE_COMMAND_ACTIONS.batch]: typed('runs allowed commands in order, as Gorgone does: [{command, timeout, continue_on_error}]', batchSchema, batchResultSchema, async (items, ctx) => {
        // Every command is checked before any runs: a batch runs whole or not at all.
        const plan = items.map((entry, index) => ({ ...entry, allowed: check(entry.command, ctx), timeoutMs: timeoutOf(entry.timeout, `[${index}].timeout`) }));
        return withSlot(async () => {
          const results: CommandResult[] = [];
          for (const [index, entry] of plan.entries()) {
            const result = await execute(entry.allowed, entry.command, entry.timeoutMs, ctx, index);
            results.push(result);
            if (result.killed?.reason === 'cancelled') throw killedError(result, entry.timeoutMs / 1000, ctx, { results, completed: false });
            const failed = result.exitCode !== 0;
            if (failed && !entry.continue_on_error) return { results, completed: false, stoppedAt: index };
          }
          return { results, completed: true };
        });
      }),
    },
    components: () => [{ id: `rule-set:${config.ruleSet}`, label: `command allow-list ${config.ruleSet} (${config.rules.length} rules)`, type: 'command-rule-set' }],
  };
}
