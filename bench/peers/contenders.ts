/**
 * Who runs in the peers benchmark: each contender is a requester process and a handler
 * process (bench/peers/<file>) talking through one broker process (brokers.ts), or directly
 * for the TCP floor. Each runs at its own default delivery guarantee.
 */
import { createRequire } from 'node:module';
import { findBinary } from '../../test/testkit/brokers.js';
import { BROKER_BINARY, BROKER_LABELS, type PeerBrokerKind } from './brokers.js';

export type Family = 'relais' | 'raw-qos0' | 'raw-qos1' | 'moleculer-mqtt' | 'moleculer-nats' | 'nats' | 'tcp';

export interface Contender {
  /** Unique, short, used in process ids: `relais@mosquitto`. */
  id: string;
  family: Family;
  label: string;
  /** The broker it talks through; none for the TCP floor. */
  broker?: PeerBrokerKind;
  /** File under bench/peers/ (a `.py` one runs on Python: process.ts). */
  file: string;
  /** When the two sides are different programs (bench/scenarios/python.ts): the requester's and the handler's file, instead of `file`. */
  requesterFile?: string;
  handlerFile?: string;
  /** Extra environment for both sides (a Python side's PYTHONPATH). */
  env?: Record<string, string>;
  /** Why it cannot run here beyond a binary or an npm package (a Python without paho), or undefined. */
  unavailable?: () => string | undefined;
  /** Extra arguments for both sides. */
  args: string[];
  /** What a request and its response are on the wire: the delivery guarantee. */
  guarantee: string;
  /** npm packages its processes load. */
  packages: string[];
}

export const FAMILY_LABELS: Record<Family, string> = {
  relais: 'Relais',
  'raw-qos0': 'raw MQTT.js QoS 0',
  'raw-qos1': 'raw MQTT.js QoS 1',
  'moleculer-mqtt': 'Moleculer, MQTT transporter',
  'moleculer-nats': 'Moleculer, NATS transporter',
  nats: 'NATS native (nats.js)',
  tcp: 'bare TCP echo (floor)',
};

/** The MQTT brokers Relais and raw MQTT.js both run on, in table order. */
export const MQTT_BROKERS: PeerBrokerKind[] = ['embedded', 'aedes-plain', 'mosquitto', 'mosquitto-default', 'nats-mqtt'];

export function allContenders(): Contender[] {
  // The embedded default as users run it, router on (history and events recorded): the first target of the performance work.
  const list: Contender[] = [{ id: 'relais@relais-start', family: 'relais', label: FAMILY_LABELS.relais, broker: 'relais-start', file: 'relais.ts', args: [], guarantee: 'acknowledged end to end, QoS 0', packages: ['mqtt', 'better-sqlite3'] }];
  for (const broker of MQTT_BROKERS) {
    list.push({ id: `relais@${broker}`, family: 'relais', label: FAMILY_LABELS.relais, broker, file: 'relais.ts', args: [], guarantee: 'acknowledged end to end, QoS 0', packages: ['mqtt'] });
    list.push({ id: `raw0@${broker}`, family: 'raw-qos0', label: FAMILY_LABELS['raw-qos0'], broker, file: 'mqtt-raw.ts', args: ['--qos', '0'], guarantee: 'QoS 0', packages: ['mqtt'] });
    list.push({ id: `raw1@${broker}`, family: 'raw-qos1', label: FAMILY_LABELS['raw-qos1'], broker, file: 'mqtt-raw.ts', args: ['--qos', '1'], guarantee: 'QoS 1', packages: ['mqtt'] });
  }
  list.push({ id: 'moleculer@mosquitto', family: 'moleculer-mqtt', label: FAMILY_LABELS['moleculer-mqtt'], broker: 'mosquitto', file: 'moleculer.ts', args: [], guarantee: 'QoS 0 (its default)', packages: ['moleculer', 'mqtt'] });
  list.push({ id: 'moleculer@nats', family: 'moleculer-nats', label: FAMILY_LABELS['moleculer-nats'], broker: 'nats', file: 'moleculer.ts', args: [], guarantee: 'at most once (core NATS)', packages: ['moleculer', 'nats'] });
  list.push({ id: 'nats@nats', family: 'nats', label: FAMILY_LABELS.nats, broker: 'nats', file: 'nats.ts', args: [], guarantee: 'at most once (core NATS)', packages: ['nats'] });
  list.push({ id: 'tcp', family: 'tcp', label: FAMILY_LABELS.tcp, file: 'tcp.ts', args: [], guarantee: 'TCP only', packages: [] });
  return list;
}

export function brokerLabel(contender: Contender): string {
  return contender.broker ? BROKER_LABELS[contender.broker] : 'none';
}

/**
 * The router scenario's contenders: the same Relais requester and handler processes on
 * `relais start` with and without its router, and (when `mosquitto` is asked for) on
 * Mosquitto with and without a router process beside it.
 */
export function routerContenders(withMosquitto: boolean): Contender[] {
  const brokers: PeerBrokerKind[] = ['relais-start', 'relais-start-no-router', ...(withMosquitto ? (['mosquitto-router', 'mosquitto'] as const) : [])];
  return brokers.map((broker) => ({ id: `relais@${broker}`, family: 'relais', label: FAMILY_LABELS.relais, broker, file: 'relais.ts', args: [], guarantee: 'acknowledged end to end, QoS 0', packages: ['mqtt', 'better-sqlite3'] }));
}

/** Why a contender cannot run here (a binary or an npm package is missing), or undefined. */
export function missing(contender: Contender): string | undefined {
  const unavailable = contender.unavailable?.();
  if (unavailable) return unavailable;
  const binary = contender.broker && BROKER_BINARY[contender.broker];
  if (binary && !findBinary(binary)) return `${binary} is not installed (apt-get install ${binary === 'mosquitto' ? 'mosquitto mosquitto-clients' : binary})`;
  const require = createRequire(import.meta.url);
  for (const name of contender.packages) {
    try {
      require.resolve(name);
    } catch {
      return `the npm package ${name} is not installed (npm ci installs the devDependencies)`;
    }
  }
  return undefined;
}

/** Process ids: safe as Relais client ids, MQTT client ids and Moleculer node ids. */
export function processId(contender: Contender, role: 'r' | 'h'): string {
  return `peers-${contender.id.replace(/[^A-Za-z0-9_.:-]/g, '-')}-${role}`;
}

/**
 * The security scenario's contenders (docs/security.md "Identities and enforcement"): the same Relais requester and handler
 * processes on `relais start --no-router` with `--secure` (identities, policy, source check)
 * and without.
 */
export function securityContenders(): Contender[] {
  const brokers: PeerBrokerKind[] = ['relais-start-secure', 'relais-start-no-router'];
  return brokers.map((broker) => ({ id: `relais@${broker}`, family: 'relais', label: FAMILY_LABELS.relais, broker, file: 'relais.ts', args: [], guarantee: 'acknowledged end to end, QoS 0', packages: ['mqtt'] }));
}

/**
 * The sites scenario's contenders (protocol §13): the same Relais requester and handler
 * processes across a link (requester on a central, handler on its site), both on the site
 * (the same pair of starts, the link idle), and both on a lone `relais start --no-web`.
 */
export function sitesContenders(): Contender[] {
  const brokers: PeerBrokerKind[] = ['relais-sites-pull', 'relais-sites-on-site', 'relais-start-no-web'];
  return brokers.map((broker) => ({ id: `relais@${broker}`, family: 'relais', label: FAMILY_LABELS.relais, broker, file: 'relais.ts', args: [], guarantee: 'acknowledged end to end, QoS 0', packages: ['mqtt', 'better-sqlite3'] }));
}

/**
 * The cluster scenario's contenders (protocol §1.3 "On a NATS cluster"): requester on node 0
 * and handler on node 1 of one 3-node nats-server cluster, Relais against raw MQTT.js at QoS 0
 * and 1 through the same gateways, and nats.js request/reply through the same nodes.
 */
export function clusterContenders(): Contender[] {
  const broker: PeerBrokerKind = 'nats-cluster-mqtt';
  return [
    { id: `relais@${broker}`, family: 'relais', label: FAMILY_LABELS.relais, broker, file: 'relais.ts', args: [], guarantee: 'acknowledged end to end, QoS 0', packages: ['mqtt'] },
    { id: `raw0@${broker}`, family: 'raw-qos0', label: FAMILY_LABELS['raw-qos0'], broker, file: 'mqtt-raw.ts', args: ['--qos', '0'], guarantee: 'QoS 0', packages: ['mqtt'] },
    { id: `raw1@${broker}`, family: 'raw-qos1', label: FAMILY_LABELS['raw-qos1'], broker, file: 'mqtt-raw.ts', args: ['--qos', '1'], guarantee: 'QoS 1 (a JetStream write per message)', packages: ['mqtt'] },
    { id: 'nats@nats-cluster', family: 'nats', label: FAMILY_LABELS.nats, broker: 'nats-cluster', file: 'nats.ts', args: [], guarantee: 'at most once (core NATS)', packages: ['nats'] },
  ];
}
