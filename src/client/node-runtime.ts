/**
 * The client in Node (src/client/runtime.ts): the broker and log level from the environment,
 * logs to stderr, the host name and pid in presence, logs on demand, and Ed25519 signatures
 * and sealed payloads on node:crypto.
 */
import { hostname } from 'node:os';
import pino from 'pino';
import { LogService } from './serving/log-service.js';
import { DEFAULTS } from './options.js';
import type { Runtime } from './runtime.js';
import { Signer, Verifier } from './connection/signing.js';
import { Sealing } from './sealing.js';

export const nodeRuntime: Runtime = {
  defaultBroker: () => process.env.RELAIS_BROKER ?? DEFAULTS.broker,
  defaultLogger: () => pino({ name: 'relais', level: process.env.RELAIS_LOG_LEVEL ?? 'warn' }, pino.destination({ fd: 2, sync: true })),
  hostFacts: () => ({ host: hostname(), pid: process.pid }),
  logService: (options, logs) => new LogService(options.id, options.logger, logs, options.broker, options.maxMessageBytes),
  signatures: {
    signer: (options) => new Signer(options),
    verifier: (options, own, identity) => new Verifier(options, own, identity),
  },
  sealing: (options) => new Sealing(options),
};
