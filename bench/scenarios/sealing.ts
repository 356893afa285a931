/**
 * Scenario "sealing" (protocol §3.6): what sealed payloads cost.
 *
 * 1. Per message, in this process: `sealPayload` and `openPayload` (src/security/sealing.ts,
 *    node:crypto), for 1 and 8 recipients, a 100-byte JSON payload and 64 KiB of bytes, in a
 *    loop; AES-256-GCM of the same plaintext alone as the floor.
 * 2. Requests end to end, sealed (command sealed for the handler, answers sealed back) against
 *    not, with the same Relais requester and handler processes and the broker in its own process
 *    (the peers harness, bench/scenarios/peers.ts), on the embedded broker and on Mosquitto.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createCipheriv, randomBytes } from 'node:crypto';
import { newSealingKeyPair, openPayload, sealingIdentityKey, sealingRecipient, sealPayload } from '../../src/security/sealing.js';
import { generateSealingKey } from '../../src/security/sealing-keys.js';
import { log, perCall, type Table } from '../lib/util.js';
import type { PeerBrokerKind } from '../peers/brokers.js';
import { FAMILY_LABELS, processId, type Contender } from '../peers/contenders.js';
import { onOffTable } from '../peers/report.js';
import { runPeers, type PeersConfig, type PeersResult } from './peers.js';

export interface SealingConfig {
  peers: Omit<PeersConfig, 'contenders' | 'filter'>;
  /** Messages per micro loop of a small payload (a 64 KiB loop runs a sixteenth of them). */
  micro: number;
  mosquitto: boolean;
}

export interface SealingMicroResult {
  payload: string;
  recipients: number;
  /** µs per call, median of 5 loops. */
  sealUs: number;
  openUs: number;
  /** AES-256-GCM of the plaintext alone (no key agreement, no wrapping), µs. */
  gcmUs: number;
  /** Bytes on the wire: the body and the seal member's JSON text. */
  bodyBytes: number;
  sealBytes: number;
}

export interface SealingResult {
  config: SealingConfig;
  micro: SealingMicroResult[];
  peers: PeersResult;
}

function contenders(dir: string, withMosquitto: boolean): Contender[] {
  const brokers: PeerBrokerKind[] = ['embedded', ...(withMosquitto ? (['mosquitto'] as const) : [])];
  return brokers.flatMap((broker) =>
    [false, true].map((on) => ({
      id: `relais${on ? '-sealed' : ''}@${broker}`,
      family: 'relais' as const,
      label: FAMILY_LABELS.relais,
      broker,
      file: 'relais.ts',
      // Each pair its own action: the four share the brokers, and a requester must reach its own handler only.
      args: [...(on ? ['--sealing', dir] : []), '--action', `bench/echo-${on ? 'sealed' : 'plain'}`],
      guarantee: 'acknowledged end to end, QoS 0',
      packages: ['mqtt'],
    })),
  );
}

function gcmAlone(plaintext: Uint8Array): void {
  const cipher = createCipheriv('aes-256-gcm', randomBytes(32), randomBytes(12));
  cipher.update(plaintext);
  cipher.final();
  cipher.getAuthTag();
}

function measureMicro(count: number): SealingMicroResult[] {
  const binding = { type: 'command', source: 'peers-relais-r~bench', token: 'eJygfYpM.3' };
  const payloads: Array<{ name: string; value: unknown; plaintext: Uint8Array; count: number }> = [];
  const json = { n: 0, text: 'relais benchmark echo payload', pad: 'x'.repeat(52) };
  payloads.push({ name: `JSON, ${Buffer.byteLength(JSON.stringify(json))} B`, value: json, plaintext: Buffer.from(JSON.stringify(json)), count });
  const bytes = randomBytes(64 * 1024);
  payloads.push({ name: 'bytes, 64 KiB', value: bytes, plaintext: bytes, count: Math.max(50, Math.floor(count / 16)) });
  const results: SealingMicroResult[] = [];
  for (const recipients of [1, 8]) {
    const pairs = Array.from({ length: recipients }, () => newSealingKeyPair());
    const to = pairs.map((pair) => sealingRecipient(pair.publicKey));
    // The opener holds the last key listed: opening looks its kid up among all of them.
    const opener = [sealingIdentityKey(pairs.at(-1)!.privateKey)];
    for (const payload of payloads) {
      const sealed = Array.from({ length: payload.count }, () => sealPayload(payload.value, binding, to));
      const sealUs = perCall(payload.count, () => sealPayload(payload.value, binding, to));
      const openUs = perCall(payload.count, (i) => {
        if (!openPayload(binding, sealed[i]!.seal, sealed[i]!.body, opener).ok) throw new Error('a genuine sealed message did not open');
      });
      const gcmUs = perCall(payload.count, () => gcmAlone(payload.plaintext));
      results.push({ payload: payload.name, recipients, sealUs, openUs, gcmUs, bodyBytes: sealed[0]!.body.length, sealBytes: Buffer.byteLength(JSON.stringify(sealed[0]!.seal)) });
    }
  }
  return results;
}

export async function runSealing(config: SealingConfig): Promise<SealingResult> {
  log(`sealing: micro loops of ${config.micro} messages`);
  const micro = measureMicro(config.micro);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-bench-sealing-'));
  try {
    const chosen = contenders(dir, config.mosquitto);
    const keysFile = path.join(dir, 'sealing-keys.json');
    for (const contender of chosen.filter((c) => c.args.includes('--sealing'))) {
      for (const role of ['r', 'h'] as const) generateSealingKey(keysFile, processId(contender, role), dir);
    }
    const peers = await runPeers({ ...config.peers, contenders: chosen });
    return { config, micro, peers };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function sealingTables(run: SealingResult): Table[] {
  const tables: Table[] = [
    {
      title: 'Sealing: cost per message, in one process',
      columns: ['payload', 'recipients', 'seal µs', 'open µs', 'AES-256-GCM alone µs', 'body bytes', 'seal member bytes'],
      rows: run.micro.map((m) => [m.payload, String(m.recipients), m.sealUs.toFixed(1), m.openUs.toFixed(1), m.gcmUs.toFixed(1), String(m.bodyBytes), String(m.sealBytes)]),
      notes: [
        `median of 5 loops; ${run.config.micro} messages per loop of the small payload, a sixteenth of that (at least 50) of 64 KiB`,
        'seal: a fresh content key, nonce and ephemeral X25519 key pair, one X25519 agreement + HKDF + key wrap per recipient, then AES-256-GCM of the plaintext (JSON text for a JSON payload); open: one agreement + HKDF + unwrap, then AES-256-GCM and JSON.parse',
        'per sealed request with an answer at once: the requester seals the command and opens the final, the handler opens the command and seals the final',
      ],
    },
  ];
  tables.push(
    onOffTable(run.peers, {
      onId: 'relais-sealed',
      onLabel: 'sealed both ways',
      title: 'Sealing: requests sealed / not (same requester and handler processes)',
      column: 'payloads',
      notes: ['sealed both ways: the requester seals every command for the handler identity (request option seal: true), the handler opens it and seals its answer back; keys from a sealing-keys.json made with generateSealingKey, given as connect option sealing'],
    }),
  );
  return tables;
}
