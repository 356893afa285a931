/**
 * A command as a foreign peer sends it (protocol §4.2, §7.4): a raw MQTT.js client subscribes to
 * its response topic, publishes the command targeted at `target`, and resolves with the final
 * response (acknowledgements skipped). Its connection is closed either way.
 */
import mqtt from 'mqtt';
import { uniqueId, within } from './index.js';

export async function rawCommand(url: string, action: string, target: string, payload: unknown, timeout = 15_000): Promise<{ code: number; payload: unknown }> {
  const raw = await mqtt.connectAsync(url, { clientId: uniqueId('raw'), protocolVersion: 4 });
  try {
    await raw.subscribeAsync(`${action}/response/${raw.options.clientId}`, { qos: 1 });
    const final = new Promise<{ code: number; payload: unknown }>((resolve) =>
      raw.on('message', (_topic, body) => {
        const response = JSON.parse(body.toString()) as { code: number; payload: unknown; accepted?: boolean };
        if (!response.accepted) resolve(response);
      }),
    );
    const command = { v: 1, type: 'command', source: raw.options.clientId, destination: target, token: uniqueId('t'), payload, deadline: Date.now() + timeout };
    await raw.publishAsync(`${action}/request/${target}`, JSON.stringify(command), { qos: 1 });
    return await within(final, timeout, `the answer of ${target} to ${action}`);
  } finally {
    await raw.endAsync(true);
  }
}
