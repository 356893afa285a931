/** `relais agent --id <name> [--config FILE]`: the built-in services of a host (docs/agent.md). */
import { Command } from 'commander';
import { startAgent, type Agent } from '../agent/agent.js';
import { AgentConfigError, loadAgentConfig, type AgentConfig } from '../agent/config.js';
import { addConnectionOptions, addDirectoryOption, cliConnectOptions, fail, EXIT, onInterrupt, type GlobalOptions } from './common.js';
import { addLogFormatOption, logFormatOf } from './log-lines.js';
import { commandLogger } from '../logging/log-lines.js';

interface AgentCommandOptions extends GlobalOptions {
  logFormat?: string;
  config?: string;
  directory: 'full' | 'on-demand';
}

export function agentCommand(): Command {
  return addDirectoryOption(addLogFormatOption(addConnectionOptions(new Command('agent'))))
    .description("serve this host's built-in actions (disks, commands, components, benchmark) as the config file enables them")
    .option('-c, --config <file>', 'the agent config (JSON, docs/agent.md); without it only system/components/discover is served')
    .action(async (options: AgentCommandOptions) => {
      if (!options.id) fail(EXIT.USAGE, 'give the agent its id on the bus: --id <name> (or RELAIS_ID)');
      let config: AgentConfig = { services: {} };
      try {
        if (options.config !== undefined) config = loadAgentConfig(options.config);
      } catch (error) {
        if (error instanceof AgentConfigError) fail(EXIT.USAGE, error.message);
        throw error;
      }
      let agent: Agent;
      try {
        agent = await startAgent({
          id: options.id,
          config,
          logger: commandLogger(options.verbose ? 'debug' : 'info', 'relais-agent', logFormatOf(options)),
          connection: { ...cliConnectOptions(options), directory: options.directory },
        });
      } catch (error) {
        fail(EXIT.ERROR, `the agent did not start: ${(error as Error).message}`);
      }
      agent.bus.on('replaced', () => void agent.close().finally(() => process.exit(EXIT.ERROR)));
      onInterrupt(async (signal) => {
        process.stdout.write(`relais: ${signal} received, stopping the agent\n`);
        await agent.close();
        process.exit(EXIT.OK);
      });
      process.stdout.write(`relais: agent ${options.id} serving ${agent.services.join(', ')}; Ctrl-C stops\n`);
    });
}
