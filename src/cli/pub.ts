/** `relais pub` and `relais notify`: send one message and leave. */
import { Command } from 'commander';
import { checkClientId, checkPath, checkTopicName } from '../library.js';
import { addFileOption, fileBytes } from './binary-payload.js';
import { addConnectionOptions, connectCli, fail, EXIT, parseJsonArgument, type GlobalOptions } from './common.js';

export function pubCommand(): Command {
  return addFileOption(addConnectionOptions(new Command('pub')), 'the message, as they are (a raw MQTT payload)')
    .description('publish a JSON message as-is on a topic (an envelope, or anything for plain MQTT peers); -r retains it, -n clears what the topic retains')
    .argument('<topic>', 'MQTT topic')
    .argument('[json]', 'message body (JSON); none with -n')
    .option('-r, --retain', 'ask the broker to retain it')
    .option('-n, --clear', 'clear the message the broker retains on the topic (an empty retained message, as mosquitto_pub -r -n); the policy decides who may')
    .action(async (topic: string, json: string | undefined, options: GlobalOptions & { retain?: boolean; clear?: boolean; file?: string }) => {
      const problem = checkTopicName(topic);
      if (problem) fail(EXIT.USAGE, problem);
      if (options.clear && (json !== undefined || options.file !== undefined)) fail(EXIT.USAGE, '-n/--clear sends an empty message: give no message with it');
      if (!options.clear && json === undefined && options.file === undefined) fail(EXIT.USAGE, 'give the message (JSON) to publish, --file, or -n to clear the retained one');
      // An empty retained message is how MQTT clears a retained topic (MQTT 3.1.1 §3.3.1.3).
      const message = options.clear ? '' : options.file !== undefined ? fileBytes(options.file, json !== undefined) : parseJsonArgument(json, 'the message');
      const bus = await connectCli(options, { info: { program: `pub ${topic}` } });
      bus.publish(topic, message, { ...((options.retain || options.clear) && { retain: true }) });
      await bus.close();
    });
}

export function notifyCommand(): Command {
  return addFileOption(addConnectionOptions(new Command('notify')), 'the payload')
    .description('publish a notification on <category>/notification')
    .argument('<category>', 'category path, e.g. system/events/error')
    .argument('[json]', 'payload (JSON); default {}')
    .option('--seal-for <identities>', 'seal the payload for these identities (comma-separated), with their keys from --sealing-keys: the others see only its size (protocol §3.6)')
    .action(async (category: string, json: string | undefined, options: GlobalOptions & { file?: string; sealFor?: string }) => {
      const problem = checkPath(category, 'category');
      if (problem) fail(EXIT.USAGE, problem);
      const sealFor = options.sealFor === undefined ? undefined : sealForOption(options.sealFor, options);
      const payload = options.file !== undefined ? fileBytes(options.file, json !== undefined) : parseJsonArgument(json ?? '{}', 'the payload');
      const bus = await connectCli(options);
      try {
        bus.notify(category, payload, sealFor ? { sealFor } : {});
      } catch (error) {
        await bus.close();
        fail(EXIT.ERROR, (error as Error).message);
      }
      await bus.close();
    });
}

/** `--seal-for a,b`: the identities, each checked; it needs the keys file that holds their keys. */
function sealForOption(list: string, options: GlobalOptions): string[] {
  const identities = list.split(',').map((part) => part.trim()).filter(Boolean);
  if (identities.length === 0) fail(EXIT.USAGE, '--seal-for needs at least one identity');
  for (const identity of identities) {
    const problem = checkClientId(identity);
    if (problem) fail(EXIT.USAGE, `--seal-for: ${problem}`);
  }
  if (options.sealingKeys === undefined) fail(EXIT.USAGE, '--seal-for needs --sealing-keys (RELAIS_SEALING_KEYS): the public sealing keys file holding their keys');
  return identities;
}
