/**
 * Scenario "signing" (protocol §12): what signed envelopes cost.
 *
 * 1. Per message, in this process: Ed25519 sign and verify alone (node:crypto) and the
 *    library's whole steps, `Signer.sign` (sign + append the `sig` member) and
 *    `Verifier.check` (decode, read the member, verify, skew and replay window), over a command
 *    as the library writes it, in a loop.
 * 2. Requests end to end, signing + verification on against off, with the same Relais requester
 *    and handler processes and the broker in its own process (the peers harness,
 *    bench/scenarios/peers.ts), on the embedded broker and on Mosquitto.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { Signer, Verifier } from '../../src/client/connection/signing.js';
import { decode, encode } from '../../src/protocol/envelope.js';
import { commandMessage } from '../../src/protocol/messages.js';
import { generateSigningKey } from '../../src/security/signing-keys.js';
import { log, perCall, type Table } from '../lib/util.js';
import type { PeerBrokerKind } from '../peers/brokers.js';
import { FAMILY_LABELS, processId, type Contender } from '../peers/contenders.js';
import { onOffTable } from '../peers/report.js';
import { runPeers, type PeersConfig, type PeersResult } from './peers.js';

export interface SigningConfig {
  peers: Omit<PeersConfig, 'contenders' | 'filter'>;
  /** Messages per micro loop. */
  micro: number;
  mosquitto: boolean;
}

export interface MicroResult {
  what: string;
  /** µs per message, median of 5 runs of the loop. */
  us: number;
}

export interface SigningResult {
  config: SigningConfig;
  micro: MicroResult[];
  messageBytes: { unsigned: number; signed: number };
  peers: PeersResult;
}

const TOPIC = 'bench/echo/request/peers-relais-h';

function contenders(dir: string, withMosquitto: boolean): Contender[] {
  const brokers: PeerBrokerKind[] = ['embedded', ...(withMosquitto ? (['mosquitto'] as const) : [])];
  return brokers.flatMap((broker) =>
    [false, true].map((on) => ({
      id: `relais${on ? '-signed' : ''}@${broker}`,
      family: 'relais' as const,
      label: FAMILY_LABELS.relais,
      broker,
      file: 'relais.ts',
      args: on ? ['--signing', dir] : [],
      guarantee: 'acknowledged end to end, QoS 0',
      packages: ['mqtt'],
    })),
  );
}

function measureMicro(count: number): { micro: MicroResult[]; messageBytes: { unsigned: number; signed: number } } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const body = encode(commandMessage({ source: 'peers-relais-r', destination: 'peers-relais-h', token: 'eJygfYpM.3', payload: { n: 0, text: 'relais benchmark echo payload' }, priority: 'normal', deadline: Date.now() + 30_000, acceptBy: Date.now() + 1750 }));
  const data = Buffer.from(body);
  const signature = sign(null, data, privateKey);
  const signer = new Signer({ privateKey });
  // The verifying side signs too (a client that requires signatures must), with its own key.
  const receiver = new Signer({ privateKey: generateKeyPairSync('ed25519').privateKey });
  const signedTexts = Array.from({ length: count }, () => Buffer.from(signer.sign(TOPIC, body)));
  const micro: MicroResult[] = [];
  micro.push({ what: 'Ed25519 sign alone (crypto.sign)', us: perCall(count, () => sign(null, data, privateKey)) });
  micro.push({ what: 'Ed25519 verify alone (crypto.verify)', us: perCall(count, () => verify(null, data, publicKey, signature)) });
  micro.push({ what: 'Signer.sign: sign + append the sig member', us: perCall(count, () => signer.sign(TOPIC, body)) });
  micro.push({ what: 'envelope decode alone (done anyway, verifying or not)', us: perCall(count, (i) => decode(signedTexts[i]!)) });
  // A new verifier per loop: each message is new to it (no replay refusal measured as a pass).
  // The skew is wide because the messages were signed before the loops began, seconds ago.
  const newVerifier = () => new Verifier({ keys: [{ identity: 'peers-relais-r', publicKey }], maxSkewMs: 3_600_000 }, receiver, 'peers-relais-h');
  let verifier = newVerifier();
  micro.push({
    what: 'Verifier.check: decode, read sig, verify, skew, replay window',
    us: perCall(count, (i) => {
      if (i === 0) verifier = newVerifier();
      const text = signedTexts[i]!;
      if (!verifier.check(TOPIC, text, () => decode(text), true).ok) throw new Error('a genuine message was refused');
    }),
  });
  return { micro, messageBytes: { unsigned: data.length, signed: signedTexts[0]!.length } };
}

export async function runSigning(config: SigningConfig): Promise<SigningResult> {
  log(`signing: micro loops of ${config.micro} messages`);
  const { micro, messageBytes } = measureMicro(config.micro);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-bench-signing-'));
  try {
    const chosen = contenders(dir, config.mosquitto);
    const keysFile = path.join(dir, 'signing-keys.json');
    for (const contender of chosen.filter((c) => c.args.length)) {
      for (const role of ['r', 'h'] as const) generateSigningKey(keysFile, processId(contender, role), dir);
    }
    const peers = await runPeers({ ...config.peers, contenders: chosen });
    return { config, micro, messageBytes, peers };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function signingTables(run: SigningResult): Table[] {
  const tables: Table[] = [
    {
      title: 'Signing: cost per message, in one process',
      columns: ['step', 'µs per message (median of 5 loops)'],
      rows: run.micro.map((m) => [m.what, m.us.toFixed(1)]),
      notes: [
        `${run.config.micro} messages per loop; a library command of ${run.messageBytes.unsigned} bytes, ${run.messageBytes.signed} bytes signed (+${run.messageBytes.signed - run.messageBytes.unsigned}: the sig member)`,
        'per request with signing on: 2 signs and 2 verifications (command, final) when the handler answers at once, each side doing one of each',
      ],
    },
  ];
  tables.push(
    onOffTable(run.peers, {
      onId: 'relais-signed',
      onLabel: 'signed + verified',
      title: 'Signing: requests with signing and verification on / off (same requester and handler processes)',
      column: 'signatures',
      notes: ['signed + verified: both sides sign everything they write (presence included) and require signatures (connect options signing and verify, keys from a file made with generateSigningKey)'],
    }),
  );
  return tables;
}
