/**
 * nats-server with its MQTT gateway (the clustered engine a deployment may use instead of one
 * broker), on free ports of 127.0.0.1, its JetStream store in a temporary folder. As measured:
 * the gateway needs `server_name`, a `jetstream {}` block and `mqtt { listen }`; it speaks
 * MQTT 3.1.1 with QoS 0 and 1 only.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { brokerProcess, findBinary, freePort, freezer, type TestBroker } from './brokers.js';

export async function startNats(): Promise<TestBroker> {
  const binary = findBinary('nats-server');
  if (!binary) throw new Error('nats-server is not installed');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-nats-'));
  const [port, mqttPort] = [await freePort(), await freePort()];
  const configPath = path.join(dir, 'nats.conf');
  fs.writeFileSync(
    configPath,
    [
      `server_name: relais-test-${process.pid}`,
      `listen: 127.0.0.1:${port}`,
      `jetstream { store_dir: ${JSON.stringify(path.join(dir, 'js'))} }`,
      `mqtt { listen: 127.0.0.1:${mqttPort} }`,
      '',
    ].join('\n'),
  );
  const { start, stop, close, current } = brokerProcess(binary, ['-c', configPath], /Server is ready/, 'nats-server', dir);
  await start();
  return { kind: 'nats', url: `mqtt://127.0.0.1:${mqttPort}`, stop, start, ...freezer(current), close, [Symbol.asyncDispose]: close };
}
