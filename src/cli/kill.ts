/** `relais kill <token>`: cancel a running request by its token, through the router (protocol §11.5, seed 002's KILL). */
import { Command } from 'commander';
import { NoHandlerError } from '../index.js';
import { KILL_ACTION, type KillResult } from '../router/kill-service.js';
import { addConnectionOptions, connectCli, EXIT, writeLine, type GlobalOptions } from './common.js';

interface KillCommandOptions extends GlobalOptions {
  reason?: string;
  json?: boolean;
}

export function killCommand(): Command {
  return addConnectionOptions(new Command('kill'))
    .description("cancel a running request by its token: the router sends the cancel to its handler (allowed to the request's requester and to the router's --admin ids)")
    .argument('<token>', 'the token of the request (relais call --detach prints it; relais history shows it)')
    .option('--reason <text>', 'why, as the handler and the history will see it')
    .option('--json', 'a JSON line even on a terminal')
    .action(async (token: string, options: KillCommandOptions) => {
      const bus = await connectCli(options);
      let exitCode: number = EXIT.OK;
      try {
        await bus.waitForHandler(KILL_ACTION, { timeout: 3000 }).catch(() => {
          throw new NoHandlerError(`no client serves ${KILL_ACTION}`);
        });
        const result = (await bus.request(KILL_ACTION, { token, ...(options.reason !== undefined && { reason: options.reason }) })) as KillResult;
        if (process.stdout.isTTY && !options.json) process.stdout.write(`relais: cancel sent to ${result.handler} for ${result.action} (sent by ${result.requester})\n`);
        else writeLine(result);
      } catch (error) {
        exitCode = error instanceof NoHandlerError ? EXIT.NO_HANDLER : EXIT.ERROR;
        if (error instanceof NoHandlerError) process.stderr.write('relais: no router is answering: kill goes through the router (relais start runs one, or relais router)\n');
        else process.stderr.write(`relais: ${(error as Error).message}\n`);
      } finally {
        await bus.close();
      }
      process.exit(exitCode);
    });
}
