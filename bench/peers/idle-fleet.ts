/**
 * One process of the idle scenario's fleet (bench/scenarios/idle.ts): many Relais clients at
 * the library's defaults (the real-time lane's second connection, presence, the directory of
 * every other client, logs on demand), which connect and then do nothing, as a deployment's
 * idle clients would, each with its own connections.
 *
 *   node --import tsx bench/peers/idle-fleet.ts --url URL --prefix idle-3- --count 2500 [--concurrency 25] [--no-realtime] [--on-demand] [--lite]
 *
 * With `--on-demand`, the library clients connect with `directory: 'on-demand'` (protocol §7.2):
 * each hears only its own presence until it needs the directory, which an idle client never does.
 *
 * With `--lite`, each client is instead what protocol §7.4 asks of a foreign peer and no more:
 * one raw MQTT.js connection with a `dead` Last Will on its presence topic and a retained
 * `alive` presence, no subscription (so no directory): what the broker and the router see of a
 * client, without each client receiving every other's presence (N² deliveries in all).
 *
 * Lines as in protocol.ts: {"peer":"ready"} at once; on {"cmd":"fleet-connect"} it connects
 * `count` clients (`concurrency` at a time; ids `<prefix><n>`) and answers a FleetReply; on
 * {"cmd":"fleet-stats"} it answers one with its memory and CPU so far. When stdin ends it exits
 * without closing them (their Last Wills say `dead`, as for machines that went away): closing
 * thousands of clients one by one would only slow the run down.
 */
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import pino from 'pino';
import type { Bus } from '../../src/index.js';
import { presenceTopic } from '../../src/protocol/topics.js';
import { relais } from '../lib/relais.js';
import { withDeadline } from '../lib/util.js';
import type { FleetReply } from './protocol.js';
import { reply, serveCommands } from './child-io.js';

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: '' },
    prefix: { type: 'string', default: `idle-${process.pid}-` },
    count: { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '25' },
    'no-realtime': { type: 'boolean', default: false },
    'on-demand': { type: 'boolean', default: false },
    lite: { type: 'boolean', default: false },
  },
});
const count = Number(values.count);
const concurrency = Number(values.concurrency);
const logger = pino({ name: 'relais-idle', level: process.env.RELAIS_LOG_LEVEL ?? 'warn' }, pino.destination({ fd: 2, sync: true }));
const buses: Array<Bus | MqttClient> = [];
let firstAt: number | undefined;
let lastAt: number | undefined;
const errors: string[] = [];
let failed = 0;

function stats(cmd: FleetReply['cmd']): FleetReply {
  const memory = process.memoryUsage();
  const cpu = process.cpuUsage();
  const sample = values.lite ? [] : (buses as Bus[]).filter((_, index) => index % Math.max(1, Math.floor(buses.length / 20)) === 0);
  const directories = sample.map((bus) => bus.clients().length);
  return {
    peer: 'fleet',
    cmd,
    pid: process.pid,
    connected: buses.length,
    failed,
    errors: errors.slice(0, 5),
    ...(firstAt !== undefined && { firstAt }),
    ...(lastAt !== undefined && { lastAt }),
    rssBytes: memory.rss,
    heapBytes: memory.heapUsed,
    cpuMs: (cpu.user + cpu.system) / 1000,
    directoryMin: directories.length ? Math.min(...directories) : 0,
  };
}

async function connectAll(): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let n = next++; n < count; n = next++) {
      const id = `${values.prefix}${n}`;
      firstAt ??= Date.now();
      try {
        buses.push(values.lite ? await connectLite(id) : await relais.connect({ id, broker: values.url, logger, realtimeLane: !values['no-realtime'], connectTimeout: 120_000, ...(values['on-demand'] && { directory: 'on-demand' as const }) }));
        lastAt = Date.now();
      } catch (error) {
        failed++;
        if (errors.length < 5) errors.push(`${id}: ${(error as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

/** A foreign peer's presence (protocol §7.1, §7.4): the will first, then `alive`, both retained at QoS 1. */
async function connectLite(id: string): Promise<MqttClient> {
  const since = Date.now();
  const presence = (status: 'alive' | 'dead', seq: number) =>
    JSON.stringify({ v: 1, type: 'notification', source: id, destination: '*', payload: { host: 'bench', pid: process.pid, status, actions: [], since, seq }, ts: Date.now() });
  const topic = presenceTopic(id);
  const client = mqtt.connect(values.url, { clientId: id, protocolVersion: 4, clean: true, keepalive: 30, reconnectPeriod: 0, connectTimeout: 120_000, will: { topic, payload: Buffer.from(presence('dead', 0)), qos: 1, retain: true } });
  client.on('error', () => {});
  await withDeadline(new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  }), 120_000, `connect ${id}`);
  await new Promise<void>((resolve, reject) => client.publish(topic, presence('alive', 1), { qos: 1, retain: true }, (error) => (error ? reject(error) : resolve())));
  return client;
}

serveCommands(
  { peer: 'ready', pid: process.pid },
  async (command) => {
    if (command.cmd === 'fleet-connect') {
      await connectAll();
      reply(stats('fleet-connect'));
    } else if (command.cmd === 'fleet-stats') {
      reply(stats('fleet-stats'));
    } else {
      reply({ peer: 'error', message: `not a fleet command: ${command.cmd}` });
    }
  },
  () => process.exit(0),
);
