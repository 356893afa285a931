/** `relais kill <token>`: cancel a running request by its token, through the router (protocol §11.5; Gorgone's KILL). */
import { Command } from 'commander';
import { KILL_ACTION, KILL_WAIT_MS, type KillResult } from '../protocol/history.js';
import { addConnectionOptions, EXIT, fail, writeLine, type GlobalOptions } from './common.js';
import { withRouter } from './router-client.js';

interface KillCommandOptions extends GlobalOptions {
  reason?: string;
  wait: string;
  json?: boolean;
}

export function killCommand(): Command {
  return addConnectionOptions(new Command('kill'))
    .description(
      "cancel a running request by its token: the router sends the cancel to its handler and says what happened (allowed to the request's requester and to the router's --admin ids). Exit 0 killed (the handler answered code 5, or disappeared), 4 cancel sent but not confirmed in time, 1 the request ended otherwise or the kill was refused",
    )
    .argument('<token>', 'the token of the request (relais call --detach prints it; relais history shows it)')
    .option('--reason <text>', 'why, as the handler and the history will see it')
    .option('--wait <seconds>', 'how long to wait for the handler to confirm', String(KILL_WAIT_MS.default / 1000))
    .option('--json', 'a JSON line even on a terminal')
    .action(async (token: string, options: KillCommandOptions) => {
      const wait = Math.round(Number(options.wait) * 1000);
      if (!(wait >= 0 && wait <= KILL_WAIT_MS.max)) fail(EXIT.USAGE, `--wait must be 0 to ${KILL_WAIT_MS.max / 1000} seconds, got ${options.wait}`);
      await withRouter(options, KILL_ACTION, 'kill goes through the router', async (bus) => {
        const result = (await bus.request(KILL_ACTION, { token, wait, ...(options.reason !== undefined && { reason: options.reason }) }, { timeout: wait + 30_000 })) as KillResult;
        if (process.stdout.isTTY && !options.json) process.stdout.write(`relais: ${describe(result)}\n`);
        else writeLine(result);
        return result.killed ? EXIT.OK : result.outcome === 'unconfirmed' ? EXIT.NOT_CONFIRMED : EXIT.ERROR;
      });
    });
}

/** What happened, in words: only what the router saw (protocol §11.5). */
function describe(result: KillResult): string {
  const what = `${result.action} (token ${result.token}, sent by ${result.requester})`;
  switch (result.outcome) {
    case 'cancelled':
      return `killed: ${result.handler} cancelled ${what}`;
    case 'handler-gone':
      return `killed: ${result.handler}, which ran ${what}, is gone`;
    case 'finished':
      return `not killed: ${what} ended with code ${result.code} before the cancel took effect`;
    case 'unconfirmed':
      return `cancel sent to ${result.handler} for ${what}; the handler did not confirm within ${(result.waitedMs / 1000).toFixed(1)} s`;
  }
}
