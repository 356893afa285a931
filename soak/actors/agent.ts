/**
 * The agent of the soak: what `relais agent --id <id> --config <file>` runs (src/cli/agent.ts),
 * with the identity's token. `relais agent` itself cannot log in to a broker with security on
 * yet: it passes neither RELAIS_TOKEN nor --cert/--key to its connection (only --ca), so it gets
 * "Bad username or password". Once it does, the soak runs the CLI instead (deployment.ts).
 *   node --import tsx soak/actors/agent.ts (settings, with "config", in SOAK_ACTOR_SETTINGS)
 */
import pino from 'pino';
import { startAgent } from '../../src/agent/agent.js';
import { loadAgentConfig } from '../../src/agent/config.js';
import { actorSettings, startFailed } from './actor.js';

const settings = actorSettings<{ config: string }>();
const agent = await startAgent({
  id: settings.id,
  config: loadAgentConfig(settings.config),
  logger: pino({ name: 'relais-agent', level: process.env.RELAIS_LOG_LEVEL ?? 'info' }, pino.destination({ fd: 2, sync: true })),
  connection: { broker: settings.broker, username: settings.id, password: settings.token },
}).catch((error: Error) => startFailed(error));
process.on('SIGTERM', () => void agent.close().finally(() => process.exit(0)));
process.stdout.write(`relais: agent ${settings.id} serving ${agent.services.join(', ')}\n`);
