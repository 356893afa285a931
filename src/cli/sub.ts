/** `relais sub`: one JSON line per message on stdout. */
import { Command } from 'commander';
import { checkFilter, type Delivery } from '../index.js';
import { addConnectionOptions, connectCli, fail, EXIT, onInterrupt, writeLine, type GlobalOptions } from './common.js';

export function subCommand(): Command {
  return addConnectionOptions(new Command('sub'))
    .description('print every message on the filters as one JSON line: {"topic", "envelope"} (or {"topic", "invalid", "text"})')
    .argument('<filter...>', 'MQTT topic filters (+ and # wildcards)')
    .option('-n, --count <n>', 'exit after this many messages')
    .option('--valid-only', 'skip messages that are not Relais envelopes')
    .action(async (filters: string[], options: GlobalOptions & { count?: string; validOnly?: boolean }) => {
      for (const filter of filters) {
        const problem = checkFilter(filter);
        if (problem) fail(EXIT.USAGE, problem);
      }
      const limit = options.count === undefined ? Infinity : Number(options.count);
      if (!(limit > 0)) fail(EXIT.USAGE, `--count must be a positive number, got ${options.count}`);
      const bus = await connectCli(options);
      let seen = 0;
      const stop = async () => {
        await bus.close();
        process.exit(EXIT.OK);
      };
      const print = (delivery: Delivery) => {
        if (seen >= limit) return;
        seen += 1;
        writeLine('envelope' in delivery ? { topic: delivery.topic, envelope: delivery.envelope, ...(delivery.retained && { retained: true }) } : delivery);
        if (seen >= limit) void stop();
      };
      for (const filter of filters) {
        await bus.subscribe(filter, print as never, { includeInvalid: !options.validOnly });
      }
      onInterrupt(() => void stop());
      process.stderr.write(`relais: subscribed to ${filters.join(' ')}\n`);
    });
}
