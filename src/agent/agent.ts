/**
 * The agent (docs/agent.md): an ordinary client of the bus that serves the services its
 * config enables. It connects as `starting`, registers every action, then announces itself
 * `alive` with `info: { role: "agent", services: [...] }`, so the registry lists it with
 * its services and no requester picks it before it is ready (protocol §7.1).
 */
import type { Logger } from 'pino';
import { connect, type Bus, type ConnectOptions } from '../client/index.js';
import { componentsService } from './components.js';
import { remoteCommandService } from './remote-commands.js';
import type { AgentConfig } from './config.js';
import { disksService } from './disks.js';
import { errorReporter, serveAction, type AgentService, type ServiceContext } from './service.js';
import { benchmarkService } from './benchmark.js';
import { transferService } from './transfer.js';
import { agentLogSources } from './logs.js';

export interface AgentOptions {
  id: string;
  config: AgentConfig;
  logger: Logger;
  /** How to reach the broker (everything of `connect` but the id, presence and start-up, which the agent sets). */
  connection?: Omit<ConnectOptions, 'id' | 'info' | 'startup' | 'logger'>;
}

export interface Agent {
  bus: Bus;
  /** The services running, by name. */
  services: string[];
  close(): Promise<void>;
}

/** The services the config enables, in the order they start. */
export function enabledServices(config: AgentConfig): string[] {
  const { disks, command, components, benchmark, transfer, logs } = config.services;
  return [
    ...(disks?.enabled ? ['disks'] : []),
    ...(command?.enabled ? ['command'] : []),
    ...(transfer?.enabled ? ['transfer'] : []),
    ...(logs?.enabled ? ['logs'] : []),
    ...(benchmark?.enabled ? ['benchmark'] : []),
    // Discovery is on unless switched off: it reveals only what the other services serve and the host's device names.
    ...(components?.enabled !== false ? ['components'] : []),
  ];
}

export async function startAgent(options: AgentOptions): Promise<Agent> {
  const { config, logger } = options;
  const names = enabledServices(config);
  // The log files and journal go through the client's own relais/logs/get, chosen by `source` (protocol §11.4).
  const logSources = config.services.logs?.enabled ? agentLogSources(config.services.logs, logger) : undefined;
  const given = options.connection?.logs;
  const logs = given === false || !logSources ? given : { ...given, sources: logSources };
  const bus = await connect({ ...options.connection, ...(logs !== undefined && { logs }), id: options.id, logger, startup: 'manual', info: { role: 'agent', services: names } });
  // From here on the agent logs through the bus's logger, whose lines `relais logs <agent>` serves (protocol §11.4).
  const served = bus.logger;
  const context: ServiceContext = { bus, logger: served, reportError: errorReporter(bus, served) };
  const services: AgentService[] = [];
  try {
    for (const name of names) {
      if (name === 'logs') services.push({ name, actions: {}, components: () => logSources!.names().map((source) => ({ id: `log:${source}`, label: `log source ${source}`, type: 'log-source' })), stop: () => logSources!.close() });
      else services.push(makeService(name, config, context, () => services));
    }
    for (const service of services) {
      for (const [action, served] of Object.entries(service.actions)) await serveAction(bus, action, served);
      await service.start?.();
    }
    await bus.markReady();
  } catch (error) {
    await stopAll(services, served);
    await bus.close();
    throw error;
  }
  served.info({ id: options.id, services: names }, 'agent ready');
  return {
    bus,
    services: names,
    async close() {
      await stopAll(services, served);
      await bus.close();
    },
  };
}

function makeService(name: string, config: AgentConfig, context: ServiceContext, all: () => AgentService[]): AgentService {
  const { disks, command, benchmark, transfer } = config.services;
  switch (name) {
    case 'disks':
      return disksService(disks!, context);
    case 'command':
      return remoteCommandService(command!, context);
    case 'transfer':
      return transferService(transfer!, disks!, context);
    case 'benchmark':
      return benchmarkService(benchmark!, disks!, context);
    default:
      return componentsService(all);
  }
}

async function stopAll(services: AgentService[], logger: Logger): Promise<void> {
  for (const service of services) {
    try {
      await service.stop?.();
    } catch (error) {
      logger.warn({ service: service.name, err: (error as Error).message }, 'service did not stop cleanly');
    }
  }
}
