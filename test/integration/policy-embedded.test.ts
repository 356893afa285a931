/**
 * The embedded broker enforces what decide() says (docs/security.md "Authorisation policy"): the shared allow/deny table
 * (policy-table.ts) against `startEmbeddedBroker({ security })` with the identities in an
 * identity file (tokens as passwords) and plain MQTT.js clients.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedBroker } from '../../src/broker/index.js';
import { IdentityStore } from '../../src/security/identities.js';
import { IDENTITIES, policyTable, type Identity } from './policy-table.js';

policyTable('embedded', async (policy) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-policy-embedded-'));
  const store = new IdentityStore(path.join(dir, 'identities.json'));
  const tokens = new Map<string, string>();
  for (const [identity, role] of Object.entries(IDENTITIES)) tokens.set(identity, (await store.add(identity, [role])).token);
  const broker = await startEmbeddedBroker({ port: 0, security: { identities: store.file, policy }, log: () => {} });
  return {
    url: broker.url!,
    secret: (identity: Identity) => tokens.get(identity)!,
    grantsDeniedSubscriptions: false,
    close: async () => {
      await broker.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});
