/** `relais pub` and `relais notify`: send one message and leave. */
import { Command } from 'commander';
import { checkPath, checkTopicName } from '../index.js';
import { addConnectionOptions, connectCli, fail, EXIT, parseJsonArgument, type GlobalOptions } from './common.js';

export function pubCommand(): Command {
  return addConnectionOptions(new Command('pub'))
    .description('publish a JSON message as-is on a topic (an envelope, or anything for plain MQTT peers)')
    .argument('<topic>', 'MQTT topic')
    .argument('<json>', 'message body (JSON)')
    .option('-r, --retain', 'ask the broker to retain it')
    .action(async (topic: string, json: string, options: GlobalOptions & { retain?: boolean }) => {
      const problem = checkTopicName(topic);
      if (problem) fail(EXIT.USAGE, problem);
      const message = parseJsonArgument(json, 'the message');
      const bus = await connectCli(options);
      bus.publish(topic, message, { ...(options.retain && { retain: true }) });
      await bus.close();
    });
}

export function notifyCommand(): Command {
  return addConnectionOptions(new Command('notify'))
    .description('publish a notification on <category>/notification')
    .argument('<category>', 'category path, e.g. system/events/error')
    .argument('[json]', 'payload (JSON)', '{}')
    .action(async (category: string, json: string, options: GlobalOptions) => {
      const problem = checkPath(category, 'category');
      if (problem) fail(EXIT.USAGE, problem);
      const payload = parseJsonArgument(json, 'the payload');
      const bus = await connectCli(options);
      bus.notify(category, payload);
      await bus.close();
    });
}
