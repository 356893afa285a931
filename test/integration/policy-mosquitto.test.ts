/**
 * The exported Mosquitto ACL enforces what decide() says (docs/security.md "Export to Mosquitto"): the shared allow/deny
 * table (policy-table.ts) against a real Mosquitto with the files `relais policy export`
 * writes, passwords made with mosquitto_passwd, and plain MQTT.js clients.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { brokerProcess, findBinary, freePort, peerGate } from '../testkit/brokers.js';
import { exportMosquitto } from '../../src/security/mosquitto-export.js';
import { IDENTITIES, policyTable, type Identity } from './policy-table.js';

const gate = peerGate('mosquitto', 'the policy export test on a real Mosquitto');
const passwd = gate.run ? peerGate('mosquitto_passwd', 'the policy export test (it makes the password file)') : gate;
const secret = (identity: Identity) => `secret-of-${identity}`;

policyTable(
  'mosquitto',
  async (policy) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-policy-mosquitto-'));
    const aclPath = path.join(dir, 'relais.acl');
    const passwordPath = path.join(dir, 'relais.passwd');
    const exported = exportMosquitto(policy, { aclPath, passwordPath, depth: 4 });
    fs.writeFileSync(aclPath, exported.acl);
    const mosquittoPasswd = findBinary('mosquitto_passwd')!;
    for (const [i, identity] of (Object.keys(IDENTITIES) as Identity[]).entries()) {
      execFileSync(mosquittoPasswd, [...(i === 0 ? ['-c'] : []), '-b', passwordPath, identity, secret(identity)], { stdio: 'pipe' });
    }
    fs.chmodSync(passwordPath, 0o600);
    const port = await freePort();
    const confPath = path.join(dir, 'mosquitto.conf');
    fs.writeFileSync(confPath, [
      'persistence false', 'log_dest stderr', 'log_type error', 'log_type warning', 'log_type notice', 'log_type information',
      ...(process.getuid?.() === 0 ? ['user root'] : []),
      exported.conf,
      `listener ${port} 127.0.0.1`,
      '',
    ].join('\n'));
    const broker = brokerProcess(findBinary('mosquitto')!, ['-c', confPath], /mosquitto version .* running/, 'mosquitto', dir);
    await broker.start();
    return { url: `mqtt://127.0.0.1:${port}`, secret, grantsDeniedSubscriptions: true, close: () => broker.close() };
  },
  { skip: passwd.skip },
);
