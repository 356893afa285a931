/**
 * Relais through its public API at the library's defaults (acknowledged requests at QoS 0,
 * the real-time lane's second connection, presence), compiled (bench/lib/relais.ts): `handle('bench/echo', p => p)` and, after
 * `waitForHandler`, `request('bench/echo', payload)` (`--action` for another action name). Only the logger is given (quiet).
 * With `--signing <dir>`, both sides sign with `<dir>/<id>.key` and require signatures by the
 * keys of `<dir>/signing-keys.json` (protocol §12; bench/scenarios/signing.ts). With `--sealing <dir>`, the
 * requester seals every command for the handler (the handler seals its answers back), keys
 * `<dir>/<id>.sealing.key` and `<dir>/sealing-keys.json` (protocol §3.6; bench/scenarios/sealing.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import type { ConnectOptions } from '../../src/index.js';
import { relais } from '../lib/relais.js';
import { runPeer, type PeerArgs } from './child.js';

const logger = pino({ name: 'relais-peers', level: process.env.RELAIS_LOG_LEVEL ?? 'warn' }, pino.destination({ fd: 2, sync: true }));

/** The signing and verify options of `--signing <dir>`, through the public API only. */
function signed({ signing, id }: PeerArgs): Pick<ConnectOptions, 'signing' | 'verify'> {
  if (!signing) return {};
  const file = JSON.parse(fs.readFileSync(path.join(signing, 'signing-keys.json'), 'utf8')) as { keys: Record<string, { identity: string; publicKey: string }> };
  return {
    signing: { privateKey: fs.readFileSync(path.join(signing, `${id}.key`), 'utf8') },
    verify: { keys: Object.values(file.keys).map(({ identity, publicKey }) => ({ identity, publicKey })), require: true },
  };
}

/** The sealing option of `--sealing <dir>`, through the public API only. */
function sealed({ sealing, id }: PeerArgs): Pick<ConnectOptions, 'sealing'> {
  if (!sealing) return {};
  return { sealing: { privateKey: relais.readSealingPrivateKey(path.join(sealing, `${id}.sealing.key`)), keys: relais.loadSealingKeys(path.join(sealing, 'sealing-keys.json')) } };
}

await runPeer({
  async requester(args) {
    const bus = await relais.connect({ id: args.id, broker: args.url, logger, ...signed(args), ...sealed(args) });
    await bus.waitForHandler(args.action, { timeout: 15_000 });
    const options = args.sealing ? { seal: true } : {};
    return {
      send: (payload) => bus.request(args.action, payload, options),
      close: () => bus.close(),
    };
  },
  async handler(args) {
    const bus = await relais.connect({ id: args.id, broker: args.url, logger, ...signed(args), ...sealed(args) });
    let served = 0;
    await bus.handle(args.action, (payload) => {
      served++;
      return payload;
    });
    return { served: () => served, close: () => bus.close() };
  },
});
