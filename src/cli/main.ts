/** The `relais` command: one file per sub-command. */
import { Command } from 'commander';
import { agentCommand } from './agent.js';
import { bridgeCommand } from './bridge.js';
import { callCommand } from './call.js';
import { execCommand } from './exec.js';
import { fetchCommand, sendCommand } from './transfer.js';
import { eventsCommand } from './events.js';
import { historyCommand } from './history.js';
import { killCommand } from './kill.js';
import { clientsCommand } from './clients.js';
import { sitesCommand } from './sites.js';
import { logsCommand } from './logs.js';
import { pubCommand, notifyCommand } from './pub.js';
import { policyCommand } from './policy.js';
import { identityCommand } from './identity.js';
import { contractsCommand } from './contracts.js';
import { initCommand } from './init.js';
import { routerCommand } from './router.js';
import { serveCommand } from './serve.js';
import { statsCommand } from './stats.js';
import { startCommand } from './start.js';
import { subCommand } from './sub.js';
import { fail, EXIT } from './common.js';


const program = new Command('relais')
  .description('Relais: commands with progress, notifications and events over MQTT')
  .version('0.1.0')
  .addCommand(startCommand())
  .addCommand(initCommand())
  .addCommand(pubCommand())
  .addCommand(notifyCommand())
  .addCommand(subCommand())
  .addCommand(callCommand())
  .addCommand(serveCommand())
  .addCommand(routerCommand())
  .addCommand(historyCommand())
  .addCommand(statsCommand())
  .addCommand(killCommand())
  .addCommand(clientsCommand())
  .addCommand(sitesCommand())
  .addCommand(eventsCommand())
  .addCommand(logsCommand())
  .addCommand(policyCommand())
  .addCommand(identityCommand())
  .addCommand(contractsCommand())
  .addCommand(agentCommand())
  .addCommand(execCommand())
  .addCommand(bridgeCommand())
  .addCommand(sendCommand())
  .addCommand(fetchCommand());

// Usage mistakes exit 2 where they are found; what gets here failed at run time (e.g. no broker).
program.parseAsync(process.argv).catch((error: Error) => fail(EXIT.ERROR, error.message));
