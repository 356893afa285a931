/** `relais start`: the embedded broker (the main job on the default install). */
import path from 'node:path';
import { Command } from 'commander';
import { startEmbeddedBroker, BrokerStartError, BROKER_DEFAULTS } from '../broker/index.js';
import { fail, EXIT, onInterrupt } from './common.js';

export function startCommand(): Command {
  return new Command('start')
    .description('start the embedded broker (TCP and a Unix socket in the data directory)')
    .option('-p, --port <port>', 'TCP port (0 picks a free one)', String(BROKER_DEFAULTS.port))
    .option('-H, --host <host>', 'TCP address to bind (0.0.0.0 serves the network)', BROKER_DEFAULTS.host)
    .option('-d, --data-dir <dir>', 'data directory (holds the Unix socket)', process.env.RELAIS_DATA_DIR ?? '.relais')
    .action(async (options: { port: string; host: string; dataDir: string }) => {
      const port = Number(options.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) fail(EXIT.USAGE, `--port must be a port number, got ${options.port}`);
      const unixPath = path.resolve(options.dataDir, 'relais.sock');
      try {
        const broker = await startEmbeddedBroker({ host: options.host, port, unixPath });
        // Ctrl-C is wired before the announcement: whoever reads "listening" may signal at once.
        onInterrupt(async (signal) => {
          process.stdout.write(`relais: ${signal} received, stopping\n`);
          await broker.close();
          process.stdout.write('relais: stopped\n');
          process.exit(EXIT.OK);
        });
        process.stdout.write(`relais: broker listening on ${broker.url} and ${broker.unixUrl}\n`);
        process.stdout.write(`relais: clients connect with --broker ${broker.url} (or RELAIS_BROKER); Ctrl-C stops\n`);
      } catch (error) {
        if (error instanceof BrokerStartError) fail(EXIT.ERROR, error.message);
        throw error;
      }
    });
}
