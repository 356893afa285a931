/**
 * `relais start`'s security options (docs/security.md): the identities file and the
 * policy, reloaded without a restart (file watch and SIGHUP; a bad new file keeps the old one).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { BrokerSecurity } from '../broker/enforce.js';
import { defaultPolicy } from '../security/default-policy.js';
import { IdentityError, IdentityStore } from '../security/identities.js';
import { loadPolicy } from '../security/policy-file.js';
import { PolicyError, type Policy } from '../security/policy.js';
import { fail, EXIT } from './common.js';

export interface SecurityFlags {
  dataDir: string;
  secure?: boolean;
  identities?: string;
  policy?: string;
}

export interface StartSecurity {
  options: BrokerSecurity;
  identitiesFile: string;
  /** The policy file read at start, if there was one. */
  policyFile?: string;
  /** The file whose changes are read: policyFile, or where --secure looks for one. */
  watchedPolicy: string;
  stop(): void;
}

/** `--secure`, `--identities`, `--policy`: the broker's security, or undefined (off, the default). */
export function securityFromFlags(options: SecurityFlags): StartSecurity | undefined {
  if (!options.secure && options.identities === undefined && options.policy === undefined) return undefined;
  const identitiesFile = path.resolve(options.identities ?? path.join(options.dataDir, 'identities.json'));
  // Watched even while absent: `relais identity add --serves` may write it from the default policy.
  const watchedPolicy = path.resolve(options.policy ?? path.join(options.dataDir, 'policy.json'));
  const policyFile = options.policy !== undefined || fs.existsSync(watchedPolicy) ? watchedPolicy : undefined;
  try {
    const identities = new IdentityStore(identitiesFile);
    if (identities.list().length === 0) {
      fail(EXIT.USAGE, `no identities in ${identitiesFile}: nobody could connect; create one with: relais identity add <name> --role client --token${options.identities === undefined ? ` --data-dir ${options.dataDir}` : ` --file ${identitiesFile}`}`);
    }
    let policy: Policy = policyFile ? loadPolicy(policyFile) : defaultPolicy();
    // Reloaded without a restart (docs/security.md "Live revocation"); a bad new file keeps the policy in force.
    const reload = (why: string) => {
      if (!fs.existsSync(watchedPolicy)) return void process.stdout.write(`relais: ${why}: no ${watchedPolicy}: the policy in force stays (identities are followed as their file changes)\n`);
      try {
        policy = loadPolicy(watchedPolicy);
        process.stdout.write(`relais: policy ${watchedPolicy} reloaded (${why})\n`);
      } catch (error) {
        process.stderr.write(`relais: the new policy is refused, the previous one stays in force: ${(error as Error).message}\n`);
      }
    };
    const onHangUp = () => reload('SIGHUP');
    process.on('SIGHUP', onHangUp);
    // Looked at four times a second: a tightened policy acts on live connections within a second (docs/security.md "Live revocation").
    fs.watchFile(watchedPolicy, { interval: 250 }, (now, before) => now.mtimeMs !== before.mtimeMs && reload('the file changed')).unref();
    return {
      options: { identities, policy: () => policy },
      identitiesFile,
      ...(policyFile && { policyFile }),
      watchedPolicy,
      stop: () => {
        process.off('SIGHUP', onHangUp);
        fs.unwatchFile(watchedPolicy);
      },
    };
  } catch (error) {
    if (error instanceof PolicyError) fail(EXIT.USAGE, `invalid policy: ${error.message}`);
    if (error instanceof IdentityError) fail(EXIT.USAGE, error.message);
    throw error;
  }
}
