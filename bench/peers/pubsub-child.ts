/**
 * One process of the pub/sub scenario with every client apart (bench/scenarios/pubsub.ts
 * `runPubSubApart`): a publisher or a subscriber, Relais or raw MQTT.js.
 *
 *   node --import tsx bench/peers/pubsub-child.ts publisher|subscriber --side relais|raw --url URL --id ID [--fanout-member]
 *
 * - Relais: `bus.notify('rl/f1' | 'rl/f10', payload)` (QoS 1, protocol §1.3) and
 *   `bus.subscribe('rl/f1/notification', cb)` (QoS 1 by default), compiled (bench/lib/relais.ts);
 *   with `--side relais-q0` (topics `rq/…`) the subscriber asks for QoS 0 (protocol §8.3 allows it).
 * - raw: MQTT.js publish / subscribe of the same envelope bytes (bench/lib/clients.ts
 *   notificationBody) at QoS 0, on `rw/f1/notification` | `rw/f10/notification`, topics
 *   as long as Relais'; the subscriber parses the JSON, as any real one would.
 * Every subscriber subscribes to the f10 topic; `--fanout-member` is not given to the one that
 * also takes the f1 topic (the one-subscriber figure).
 *
 * Lines as in protocol.ts (`peer: 'pubsub'` replies):
 *   {"cmd":"ps-arm","run":"r3","count":50000}    subscriber: counts run r3's messages from now
 *   {"cmd":"ps-publish","run":"r3","fanout":10,"count":50000,"chunk":500}   publisher: publishes, answers when handed over
 *   {"cmd":"ps-collect","idleMs":5000,"capMs":120000}   subscriber: answers once it has all, or nothing came for idleMs
 */
import fs from 'node:fs';
import { Session } from 'node:inspector/promises';
import { parseArgs } from 'node:util';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { MqttClient } from 'mqtt';
import type { Bus } from '../../src/index.js';
import { closeAll, notificationBody, rawConnect, rawSubscribe, relaisConnect } from '../lib/clients.js';
import type { PubSubReply } from './protocol.js';
import { reply, serveCommands } from './child-io.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { side: { type: 'string', default: 'relais' }, url: { type: 'string', default: '' }, id: { type: 'string', default: `ps-${process.pid}` }, 'fanout-member': { type: 'boolean', default: false } },
});
const role = positionals[0];
const side = values.side!;
const url = values.url!;
const id = values.id!;
/** ~100 bytes of payload, as a notification would carry. */
const TEXT = 'relais pub/sub benchmark: a notification payload of about 100 bytes';

function now(): number {
  return performance.timeOrigin + performance.now();
}
function cpuMs(): number {
  const cpu = process.cpuUsage();
  return (cpu.user + cpu.system) / 1000;
}

// RELAIS_BENCH_PROFILE_FILE: a CPU profile of this process (as --cpu-prof, which NODE_OPTIONS refuses), written when it ends.
const profileFile = process.env.RELAIS_BENCH_PROFILE_FILE;
const profiler = profileFile ? new Session() : undefined;
if (profiler) {
  profiler.connect();
  await profiler.post('Profiler.enable');
  await profiler.post('Profiler.setSamplingInterval', { interval: 100 });
  await profiler.post('Profiler.start');
}

let bus: Bus | undefined;
let raw: MqttClient | undefined;
if (side === 'relais' || side === 'relais-q0') bus = await relaisConnect(url, id);
else if (side === 'raw') raw = await rawConnect(url, id);
else throw new Error(`--side must be relais, relais-q0 or raw, not ${side}`);
// One topic per side (the same length on each): a side's subscribers must not get, and pay for, another side's runs.
const topic = (fanout: number) => (side === 'raw' ? `rw/f${fanout}/notification` : `${side === 'relais' ? 'rl' : 'rq'}/f${fanout}`);

// Subscriber state: the run counted, its messages seen by sequence number.
let run = '';
let seen = new Uint8Array(0);
let received = 0;
let distinct = 0;
let firstAt = 0;
let lastAt = 0;
let armedCpu = 0;
const onPayload = (payload: { r?: string; n?: number }) => {
  if (payload.r !== run) return;
  received++;
  lastAt = now();
  firstAt ||= lastAt;
  const n = payload.n!;
  if (n >= 0 && n < seen.length && seen[n] === 0) {
    seen[n] = 1;
    distinct++;
  }
};

if (role === 'subscriber') {
  const fanouts = values['fanout-member'] ? [10] : [1, 10];
  raw?.on('message', (_topic, body) => onPayload((JSON.parse(body.toString('utf8')) as { payload: { r?: string; n?: number } }).payload));
  for (const fanout of fanouts) {
    if (bus) await bus.subscribe(`${topic(fanout)}/notification`, (message) => onPayload(message.envelope.payload as { r?: string; n?: number }), side === 'relais-q0' ? { qos: 0 } : {});
    else await rawSubscribe(raw!, topic(fanout), 0);
  }
} else if (role !== 'publisher') {
  throw new Error(`the first argument must be publisher or subscriber, not ${role}`);
}

async function publish(runId: string, fanout: number, count: number, chunk: number): Promise<PubSubReply> {
  const cpu0 = cpuMs();
  const start = now();
  const to = topic(fanout);
  for (let n = 0; n < count; n++) {
    const payload = { r: runId, n, text: TEXT };
    if (bus) bus.notify(to, payload);
    else raw!.publish(to, notificationBody(id, payload), { qos: 0 });
    if ((n + 1) % chunk === 0) await yieldToLoop();
  }
  return { peer: 'pubsub', cmd: 'ps-publish', startAt: start, endAt: now(), cpuMs: cpuMs() - cpu0 };
}

async function collect(idleMs: number, capMs: number): Promise<PubSubReply> {
  const start = Date.now();
  let lastCount = -1;
  let lastChange = start;
  while (distinct < seen.length && Date.now() - start < capMs) {
    if (received !== lastCount) {
      lastCount = received;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > idleMs) break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return { peer: 'pubsub', cmd: 'ps-collect', received, distinct, firstAt, endAt: lastAt, cpuMs: cpuMs() - armedCpu };
}

serveCommands(
  { peer: 'ready', pid: process.pid },
  async (command) => {
    try {
      if (command.cmd === 'ps-arm') {
        run = command.run;
        seen = new Uint8Array(command.count);
        received = distinct = firstAt = lastAt = 0;
        armedCpu = cpuMs();
        reply({ peer: 'pubsub', cmd: 'ps-arm', cpuMs: 0 });
      } else if (command.cmd === 'ps-publish') {
        reply(await publish(command.run, command.fanout, command.count, command.chunk));
      } else if (command.cmd === 'ps-collect') {
        reply(await collect(command.idleMs, command.capMs));
      } else {
        reply({ peer: 'error', message: `not a pub/sub command: ${command.cmd}` });
      }
    } catch (error) {
      reply({ peer: 'error', cmd: command.cmd, message: (error as Error).message });
    }
  },
  async () => {
    if (profiler) fs.writeFileSync(profileFile!, JSON.stringify((await profiler.post('Profiler.stop')).profile));
    const forced = setTimeout(() => process.exit(0), 3000);
    await closeAll([bus, raw]);
    clearTimeout(forced);
    process.exit(0);
  },
);
