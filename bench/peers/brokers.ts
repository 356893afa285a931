/**
 * The brokers of the peers benchmark, each its own process on 127.0.0.1 and a free port,
 * each with its pid (to read its CPU from /proc):
 *
 * - `embedded`: Relais' embedded broker (src/broker; TCP_NODELAY on accepted sockets);
 * - `aedes-plain`: aedes@1.2.0 as its README starts it, `net.createServer(aedes.handle)`, Nagle on;
 * - `mosquitto`: Mosquitto with the testkit config (`set_tcp_nodelay true`, raised limits);
 * - `mosquitto-default`: Mosquitto with nothing but a listener (Nagle on, 20 in flight, 1000 queued);
 * - `nats-mqtt`: nats-server's MQTT gateway (server_name, JetStream in a temp store_dir, mqtt.listen);
 * - `nats`: core nats-server (no JetStream), for the NATS contenders.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findBinary, freePort, mosquittoConfig, waitForLine } from '../../test/testkit/brokers.js';
import { withDeadline } from '../lib/util.js';
import { PeerProcess } from './process.js';
import { track } from './reaper.js';

export type PeerBrokerKind = 'embedded' | 'aedes-plain' | 'mosquitto' | 'mosquitto-default' | 'nats-mqtt' | 'nats';

export const BROKER_LABELS: Record<PeerBrokerKind, string> = {
  embedded: 'embedded (Aedes, no-delay)',
  'aedes-plain': 'plain Aedes',
  mosquitto: 'Mosquitto, set_tcp_nodelay',
  'mosquitto-default': 'Mosquitto, defaults',
  'nats-mqtt': 'nats-server MQTT',
  nats: 'nats-server (core NATS)',
};

/** The binary each kind needs; the Node brokers need only this repository. */
export const BROKER_BINARY: Partial<Record<PeerBrokerKind, string>> = {
  mosquitto: 'mosquitto',
  'mosquitto-default': 'mosquitto',
  'nats-mqtt': 'nats-server',
  nats: 'nats-server',
};

export interface PeerBroker {
  kind: PeerBrokerKind;
  label: string;
  url: string;
  pid: number;
  close(): Promise<void>;
}

export async function startPeerBroker(kind: PeerBrokerKind): Promise<PeerBroker> {
  switch (kind) {
    case 'embedded':
    case 'aedes-plain': {
      const { peer, ready } = await PeerProcess.start(`broker ${kind}`, 'aedes.ts', [kind === 'embedded' ? 'embedded' : 'plain']);
      return { kind, label: BROKER_LABELS[kind], url: ready.url!, pid: peer.pid, close: async () => void (await peer.close()) };
    }
    case 'mosquitto':
    case 'mosquitto-default': {
      const port = await freePort();
      const config = kind === 'mosquitto' ? mosquittoConfig(port) : ['log_dest stderr', `listener ${port} 127.0.0.1`, 'allow_anonymous true', ''].join('\n');
      return startDaemon(kind, 'mosquitto', (dir) => {
        fs.writeFileSync(path.join(dir, 'mosquitto.conf'), config);
        return ['-c', path.join(dir, 'mosquitto.conf')];
      }, /mosquitto version .* running/, `mqtt://127.0.0.1:${port}`);
    }
    case 'nats-mqtt': {
      const [port, mqttPort] = [await freePort(), await freePort()];
      return startDaemon(kind, 'nats-server', (dir) => {
        const config = [
          'server_name: relais_bench_mqtt',
          `listen: 127.0.0.1:${port}`,
          `jetstream { store_dir: ${JSON.stringify(path.join(dir, 'js'))} }`,
          `mqtt { listen: 127.0.0.1:${mqttPort} }`,
          '',
        ].join('\n');
        fs.writeFileSync(path.join(dir, 'nats.conf'), config);
        return ['-c', path.join(dir, 'nats.conf')];
      }, /Server is ready/, `mqtt://127.0.0.1:${mqttPort}`);
    }
    case 'nats': {
      const port = await freePort();
      return startDaemon(kind, 'nats-server', () => ['-a', '127.0.0.1', '-p', String(port)], /Server is ready/, `nats://127.0.0.1:${port}`);
    }
  }
}

/** A broker binary in a temp folder of its own; SIGTERM (then SIGKILL) and the folder removed on close. */
async function startDaemon(kind: PeerBrokerKind, binaryName: string, args: (dir: string) => string[], ready: RegExp, url: string): Promise<PeerBroker> {
  const binary = findBinary(binaryName);
  if (!binary) throw new Error(`${binaryName} is not installed`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `relais-peers-${kind}-`));
  let child: ChildProcess | undefined;
  const exited = () => new Promise<void>((resolve) => (child!.exitCode !== null || child!.signalCode !== null ? resolve() : child!.once('exit', () => resolve())));
  const close = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await withDeadline(exited(), 5000, `${kind} exit`).catch(async () => {
        child!.kill('SIGKILL');
        await withDeadline(exited(), 5000, `${kind} exit after SIGKILL`).catch(() => {});
      });
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    child = track(spawn(binary, args(dir), { stdio: ['ignore', 'ignore', 'pipe'] }));
    await waitForLine(child, ready, 15_000, binaryName);
  } catch (error) {
    await close();
    throw error;
  }
  child.stderr!.resume(); // its connection log lines are not read, but must not fill the pipe
  return { kind, label: BROKER_LABELS[kind], url, pid: child.pid!, close };
}
