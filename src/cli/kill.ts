/** `relais kill <token>`: cancel a running request by its token, through the router (protocol §11.5, seed 002's KILL). */
import { Command } from 'commander';
import { KILL_ACTION, type KillResult } from '../router/kill-service.js';
import { addConnectionOptions, writeLine, type GlobalOptions } from './common.js';
import { withRouter } from './router-client.js';

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
      await withRouter(options, KILL_ACTION, 'kill goes through the router', async (bus) => {
        const result = (await bus.request(KILL_ACTION, { token, ...(options.reason !== undefined && { reason: options.reason }) })) as KillResult;
        if (process.stdout.isTTY && !options.json) process.stdout.write(`relais: cancel sent to ${result.handler} for ${result.action} (sent by ${result.requester})\n`);
        else writeLine(result);
      });
    });
}
