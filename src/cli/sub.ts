/**
 * `relais sub`: the messages on some filters, one line each, with mosquitto_sub's habits: JSON
 * lines by default, `-v` topic and payload, `-F` a format, `-R` no retained, `-T` filters left
 * out, `-C` a count, `-W` a time-out (exit 27, as mosquitto_sub). The bus's own `relais/…` traffic
 * (presences, metrics, registry…) is left out unless a filter names it or `--internal`.
 */
import { Command } from 'commander';
import { checkFilter, type Delivery } from '../library.js';
import { addConnectionOptions, connectCli, fail, EXIT, exitWhenWritten, onInterrupt, type GlobalOptions } from './common.js';
import { compileFormat, jsonLine, shown, verboseLine } from './sub-format.js';

/** mosquitto_sub's exit code when -W passes (MOSQ_ERR_TIMEOUT): scripts written for it keep working. */
export const SUB_TIMED_OUT = 27;

interface SubOptions extends GlobalOptions {
  count?: string;
  timeout?: string;
  validOnly?: boolean;
  format?: string;
  /** false with -R (commander's --no-retained). */
  retained?: boolean;
  exclude: string[];
  internal?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function subCommand(): Command {
  const command = addConnectionOptions(new Command('sub'))
    .description('print the messages on the filters: one JSON line each ({"topic", "envelope"} or {"topic", "invalid", "text"}), or as -v / -F say; relais/… topics only when a filter names them')
    .argument('<filter...>', 'MQTT topic filters (+ and # wildcards)')
    .option('-C, --count <n>', 'exit after this many messages')
    .option('-W, --timeout <seconds>', `exit after this many seconds if still running (exit code ${SUB_TIMED_OUT}, as mosquitto_sub)`)
    .option('-F, --format <format>', 'print each message in this format: %t topic, %p payload, %e the whole message, %r retained (0/1), %q QoS, %l length, %x/%X hex, %I ISO time, %U Unix time, %j JSON, %%; \\n \\t')
    .option('-R, --no-retained', 'skip retained messages (what was there before this command started)')
    .option('-T, --exclude <filter>', 'leave out the topics this filter matches (repeatable)', collect, [])
    .option('--internal', 'also print the bus\'s own relais/… traffic that "#" or "+/…" match (presences, metrics, registry)')
    .option('--valid-only', 'skip messages that are not Relais envelopes')
    .addHelpText('after', '\n  -v, --verbose prints "topic payload" for each message here (mosquitto_sub -v); RELAIS_LOG_LEVEL=debug logs what the library does.');
  // mosquitto_sub's -v: the topic and the payload. The library's debug log stays under RELAIS_LOG_LEVEL.
  const verbose = command.options.find((option) => option.long === '--verbose');
  if (verbose) verbose.description = 'print "topic payload" for each message (mosquitto_sub -v)';
  return command.action(async (filters: string[], options: SubOptions) => {
    for (const filter of [...filters, ...options.exclude]) {
      const problem = checkFilter(filter);
      if (problem) fail(EXIT.USAGE, problem);
    }
    const limit = options.count === undefined ? Infinity : Number(options.count);
    if (!(limit > 0) || !Number.isInteger(limit === Infinity ? 1 : limit)) fail(EXIT.USAGE, `-C/--count must be a whole positive number, got ${options.count}`);
    const seconds = options.timeout === undefined ? undefined : Number(options.timeout);
    if (seconds !== undefined && !(seconds > 0 && seconds <= 2 ** 31 / 1000)) fail(EXIT.USAGE, `-W/--timeout must be a positive number of seconds, got ${options.timeout}`);
    const line = lineOf(options);
    const bus = await connectCli({ ...options, verbose: false }, { info: { program: `sub ${filters.join(' ')}` } });
    let seen = 0;
    let stopping = false;
    const stop = async (code: number) => {
      if (stopping) return;
      stopping = true;
      await bus.close();
      await exitWhenWritten(code);
    };
    // The reader went away (`relais sub '#' | head`): stop quietly, as mosquitto_sub does.
    process.stdout.on('error', () => void stop(EXIT.OK));
    const printer = (filter: string) => (delivery: Delivery) => {
      if (seen >= limit) return;
      if (options.retained === false && delivery.retained) return;
      if (!shown(delivery.topic, filter, options.exclude, options.internal === true)) return;
      seen += 1;
      process.stdout.write(`${line(delivery)}\n`);
      if (seen >= limit) void stop(EXIT.OK);
    };
    // Before the first subscription: its retained messages print at once, and a user stops on seeing them.
    onInterrupt(() => void stop(EXIT.OK));
    for (const filter of filters) {
      await bus.subscribe(filter, printer(filter) as never, { includeInvalid: !options.validOnly });
    }
    if (seconds !== undefined) {
      setTimeout(() => {
        process.stderr.write('relais: timed out\n');
        void stop(SUB_TIMED_OUT);
      }, seconds * 1000).unref();
    }
    process.stderr.write(`relais: subscribed to ${filters.join(' ')}\n`);
  });
}

/** How one message is printed: -F's format, -v's `topic payload`, or a JSON line. */
function lineOf(options: SubOptions): (delivery: Delivery) => string {
  if (options.format !== undefined) {
    const format = compileFormat(options.format);
    if ('problem' in format) fail(EXIT.USAGE, format.problem);
    return (delivery) => format(delivery, new Date());
  }
  if (options.verbose) return verboseLine;
  return jsonLine;
}
