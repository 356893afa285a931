/**
 * `relais exec <agent> -- <program> [args...]`: runs a command on an agent
 * (`system/command/run`, docs/agent.md) and shows its output as it comes, stdout lines on
 * stdout and stderr lines on stderr, then exits with the remote exit code. Ctrl-C cancels it
 * (the agent kills the command's process group).
 */
import os from 'node:os';
import { Command } from 'commander';
import { CancelledError, checkClientId, NoHandlerError, NotAuthorizedError, RemoteError, TimeoutError } from '../library.js';
import { REMOTE_COMMAND_ACTIONS } from '../agent/remote-commands.js';
import type { OutputLine } from '../agent/process-runner.js';
import { addConnectionOptions, addWaitForSiteOption, connectCli, fail, failureLine, EXIT, exitWhenWritten, onInterrupt, waitForSiteOption, type GlobalOptions } from './common.js';

/** Exit codes of `relais exec` beyond the remote command's own (the shell's conventions). */
export const EXEC_EXIT = { REFUSED: 126, NOT_FOUND: 127, TIMEOUT: EXIT.TIMEOUT, INTERRUPTED: EXIT.INTERRUPTED, NO_HANDLER: EXIT.NO_HANDLER } as const;

interface ExecOptions extends GlobalOptions {
  timeout: string;
  shell?: boolean;
  waitForSite?: string;
}

export function execCommand(): Command {
  return addWaitForSiteOption(addConnectionOptions(new Command('exec')))
    .description("run a command on an agent, its output live on this terminal; exits with the command's exit code (126 refused, 127 not found, 124 time-out, 130 interrupted)")
    .argument('<agent>', 'the id of the agent that runs it')
    .argument('<command...>', 'program (an absolute path, as the allow-list names it) and its arguments, after --')
    .option('--timeout <seconds>', 'the command is killed after this many seconds', '60')
    .option('--shell', "send the words as one command line for /bin/sh (only where a rule of the agent says shell: true)")
    .action(async (agent: string, words: string[], options: ExecOptions) => {
      const problem = checkClientId(agent);
      if (problem) fail(EXIT.USAGE, problem);
      const seconds = Number(options.timeout);
      if (!(seconds > 0) || seconds > 2_000_000) fail(EXIT.USAGE, `--timeout must be a positive number of seconds, got ${options.timeout}`);
      const command = options.shell ? words.join(' ') : words;
      const siteWait = waitForSiteOption(options);
      const bus = await connectCli(options);
      const controller = new AbortController();
      onInterrupt(() => controller.abort(new Error('interrupted')));
      let exitCode: number = EXIT.OK;
      try {
        // The request outlives the command's own time-out, so the agent's answer (which says it was killed) arrives.
        const steps = bus.call(REMOTE_COMMAND_ACTIONS.run, { command, timeout: seconds }, { target: agent, timeout: (seconds + 30) * 1000, signal: controller.signal, ...siteWait });
        for await (const step of steps) {
          if (step.kind === 'progress') show(step.payload);
          else if (step.kind === 'final') exitCode = exitCodeOf(step.payload as { exitCode: number | null; signal: string | null });
        }
      } catch (error) {
        exitCode = failureExitCode(error);
        process.stderr.write(`relais: ${failureLine(error, options.waitForSite)}\n`);
      } finally {
        await bus.close();
      }
      await exitWhenWritten(exitCode);
    });
}

function show(payload: unknown): void {
  const step = payload as { output?: OutputLine[]; marker?: string };
  for (const { stream, line } of step.output ?? []) (stream === 'stderr' ? process.stderr : process.stdout).write(`${line}\n`);
  if (step.marker) process.stderr.write(`${step.marker}\n`);
}

/** The remote exit code; a command killed by a signal exits 128 + its number, as a shell says. */
function exitCodeOf(result: { exitCode: number | null; signal: string | null }): number {
  if (result.exitCode !== null) return result.exitCode;
  const number = result.signal ? os.constants.signals[result.signal as NodeJS.Signals] : undefined;
  return number ? 128 + number : EXIT.ERROR;
}

function failureExitCode(error: unknown): number {
  if (error instanceof NotAuthorizedError) return EXEC_EXIT.REFUSED;
  if (error instanceof NoHandlerError) return EXEC_EXIT.NO_HANDLER;
  if (error instanceof TimeoutError) return EXEC_EXIT.TIMEOUT;
  if (error instanceof CancelledError) return EXEC_EXIT.INTERRUPTED;
  const details = (error instanceof RemoteError ? error : (error as { cause?: unknown }).cause instanceof RemoteError ? ((error as { cause: RemoteError }).cause) : undefined)?.details as { errno?: string } | undefined;
  if (details?.errno === 'ENOENT') return EXEC_EXIT.NOT_FOUND;
  if (details?.errno === 'EACCES') return EXEC_EXIT.REFUSED;
  return EXIT.ERROR;
}
