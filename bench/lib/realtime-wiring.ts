/**
 * The two ends of the real-time scenario (bench/scenarios/realtime.ts), for the four ways of
 * sending: A (sender) and B (receiver). B may live in this process or in a child process
 * (bench/realtime-receiver.ts), so the same code wires it in both.
 *
 * Time stamps are `performance.timeOrigin + performance.now()`: epoch milliseconds with
 * sub-millisecond resolution, comparable between processes of one machine.
 */
import type { MqttClient } from 'mqtt';
import type { Bus } from '../../src/index.js';
import { closeAll, notificationBody, rawConnect, rawSubscribe, relaisConnect } from './clients.js';

export type Variant = 'relais-lane' | 'relais-nolane' | 'raw-2conn' | 'raw-1conn';

export const VARIANTS: readonly Variant[] = ['raw-1conn', 'relais-nolane', 'raw-2conn', 'relais-lane'];

export const LABELS: Record<Variant, string> = {
  'relais-lane': 'Relais, real-time lane (default)',
  'relais-nolane': 'Relais, realtimeLane: false',
  'raw-2conn': 'raw MQTT.js, 2nd connection for real-time',
  'raw-1conn': 'raw MQTT.js, one connection',
};

export function now(): number {
  return performance.timeOrigin + performance.now();
}

export interface Sender {
  sendBulk(seq: number): void;
  sendRt(payload: { t: number; seq: number }): void;
  close(): Promise<void>;
}

export interface ReceiverEnd {
  close(): Promise<void>;
}

/** Client B: subscribes to the bulk and real-time topics; calls back on each message. */
export async function wireReceiver(url: string, variant: Variant, onBulk: () => void, onRt: (payload: { t: number }) => void): Promise<ReceiverEnd> {
  if (variant === 'relais-lane' || variant === 'relais-nolane') {
    const b = await relaisConnect(url, 'bench-rt-rl-b', { realtimeLane: variant === 'relais-lane' });
    try {
      await b.subscribe('bench/bulk/notification', () => onBulk());
      await b.subscribe('bench/rt/notification', (message) => onRt(message.envelope.payload as { t: number }), { lane: 'realtime' });
    } catch (error) {
      await closeAll([b]);
      throw error;
    }
    return { close: () => closeAll([b]) };
  }
  const clients: MqttClient[] = [];
  try {
    const bMain = await rawConnect(url, 'bench-rt-rw-b');
    clients.push(bMain);
    const bRt = variant === 'raw-2conn' ? await rawConnect(url, 'bench-rt-rw-b~rt') : bMain;
    if (bRt !== bMain) clients.push(bRt);
    const handler = (topic: string, payload: Buffer) => {
      // B reads what it receives, as Relais does (JSON, then the fields it needs).
      const envelope = JSON.parse(payload.toString('utf8')) as { payload: { t: number } };
      if (topic === 'rawmq/rt/notification') onRt(envelope.payload);
      else if (topic === 'rawmq/bulk/notification') onBulk();
    };
    for (const client of clients) client.on('message', handler);
    await rawSubscribe(bMain, 'rawmq/bulk/notification', 1);
    await rawSubscribe(bRt, 'rawmq/rt/notification', 1);
  } catch (error) {
    await closeAll(clients);
    throw error;
  }
  return { close: () => closeAll(clients) };
}

/** Client A: sends ~`bulkBytes` bulk notifications and small real-time ones. */
export async function wireSender(url: string, variant: Variant, bulkBytes: number): Promise<Sender> {
  const data = 'x'.repeat(bulkBytes - 200); // the whole envelope is about `bulkBytes`
  if (variant === 'relais-lane' || variant === 'relais-nolane') {
    const a: Bus = await relaisConnect(url, 'bench-rt-rl-a', { realtimeLane: variant === 'relais-lane' });
    return {
      sendBulk: (seq) => a.notify('bench/bulk', { seq, data }),
      sendRt: (payload) => a.notify('bench/rt', payload, { priority: 'realtime' }),
      close: () => closeAll([a]),
    };
  }
  const clients: MqttClient[] = [];
  try {
    const aMain = await rawConnect(url, 'bench-rt-rw-a');
    clients.push(aMain);
    const aRt = variant === 'raw-2conn' ? await rawConnect(url, 'bench-rt-rw-a~rt') : aMain;
    if (aRt !== aMain) clients.push(aRt);
    return {
      sendBulk: (seq) => aMain.publish('rawmq/bulk/notification', notificationBody('bench-rt-rw-a', { seq, data }), { qos: 1 }),
      sendRt: (payload) => aRt.publish('rawmq/rt/notification', notificationBody('bench-rt-rw-a', payload, 'realtime'), { qos: 1 }),
      close: () => closeAll(clients),
    };
  } catch (error) {
    await closeAll(clients);
    throw error;
  }
}
