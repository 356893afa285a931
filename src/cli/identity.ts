/** `relais identity add | revoke | list`: identities with secret tokens or client certificates (docs/security.md "Identities and enforcement"). */
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { IdentityError, IdentityStore } from '../security/identities.js';
import { loadPolicy, setServes } from '../security/policy-file.js';
import { checkServedPattern, PolicyError } from '../security/policy.js';
import { issueCertificate, PkiError } from '../security/pki.js';
import { EXIT, fail, readFileOption } from './common.js';
import { certificateRecord } from './init.js';
import { ConfigError, readStartConfig, type StartConfig } from './start-config.js';
import { identityKeyCommands } from './identity-keys.js';

interface FileOptions {
  dataDir: string;
  file?: string;
  config?: string;
}

/** Usage mistakes exit 2 (Commander's own exit code is 1). */
const usageExits = (command: Command) => command.exitOverride((error) => process.exit(error.exitCode === 0 ? EXIT.OK : EXIT.USAGE));

function withFile(command: Command): Command {
  return usageExits(command)
    .option('-d, --data-dir <dir>', 'data directory (the identities are <dir>/identities.json)', process.env.RELAIS_DATA_DIR ?? '.relais')
    .option('--file <file>', 'the identities file (instead of <data-dir>/identities.json)')
    .option('-c, --config <file>', 'the set-up relais init wrote: its identities file and CA');
}

function configOf(options: FileOptions): StartConfig | undefined {
  if (options.config === undefined) return undefined;
  try {
    return readStartConfig(path.resolve(options.config));
  } catch (error) {
    if (error instanceof ConfigError) fail(EXIT.USAGE, `invalid configuration: ${error.message}`);
    throw error;
  }
}

export function identitiesFile(options: FileOptions): string {
  return path.resolve(options.file ?? configOf(options)?.identities ?? path.join(options.dataDir, 'identities.json'));
}

function guarded<T>(run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof IdentityError) fail(EXIT.USAGE, error.message);
    throw error;
  }
}

interface AddOptions extends FileOptions {
  role?: string[];
  serves?: string[];
  policy?: string;
  token?: boolean;
  cert?: boolean;
  out?: string;
  days: string;
}

/** Before anything is written: each served pattern is an action pattern, and the policy file (if any) is valid. */
function checkServes(serves: readonly string[], policyFile: string): void {
  for (const served of serves) {
    const problem = checkServedPattern(served);
    if (problem) fail(EXIT.USAGE, `--serves ${served}: ${problem}`);
  }
  if (fs.existsSync(policyFile)) loadPolicy(policyFile);
}

/** The policy file `relais start` reads for these options: --policy, the one of --config, or <data-dir>/policy.json (--secure). */
function policyFileOf(options: AddOptions): string {
  return path.resolve(options.policy ?? configOf(options)?.policy ?? path.join(options.dataDir, 'policy.json'));
}

function addCommand(): Command {
  return withFile(new Command('add'))
    .description('add an identity with a secret token (printed once, only its hash is stored) or a client certificate from the CA, or both')
    .argument('<name>', "the identity: MQTT username and client id (its sessions are <name>~<session>, its real-time lane <name>~rt; no ~ in it); a certificate's CN")
    .option('--role <role...>', 'roles of the identity in the policy (client, service, admin, observer, agent-user, router, site in the default one)')
    .option('--serves <action...>', "the actions this service may serve, written to its entry in the policy file (+ is one level, a last # any levels below: 'billing/#'); a service serves nothing else")
    .option('--policy <file>', 'the policy file --serves writes to (default: the one of --config, else <data-dir>/policy.json; made from the default policy when absent)')
    .option('--token', 'issue a secret token (the default without --cert)')
    .option('--cert', 'issue a client certificate signed by the CA of --config: <out>/<name>.crt and <name>.key (0600)')
    .option('--out <dir>', 'where --cert writes the certificate and key (default: the directory of --config)')
    .option('--days <n>', 'validity of the certificate in days', '365')
    .action(async (name: string, options: AddOptions) => {
      const store = new IdentityStore(identitiesFile(options));
      const roles = options.role ?? [];
      try {
        store.checkFree(name, roles);
        if (options.serves) checkServes(options.serves, policyFileOf(options));
        if (options.serves && !roles.includes('service')) process.stderr.write(`relais: note: --serves is used by the rules of the role service (in the default policy); ${name} is given ${roles.join(', ') || 'no role'}\n`);
        const issued = options.cert ? await issueFor(name, options) : undefined;
        const { token, fingerprint } = issued ? await store.addWithCertificate(name, roles, certificateRecord(issued.certificate), options.token === true) : await store.add(name, roles);
        process.stdout.write(`identity ${name} added to ${store.file}${roles.length ? ` (roles: ${roles.join(', ')})` : ''}\n`);
        if (options.serves) {
          const policyFile = policyFileOf(options);
          const { created } = setServes(policyFile, name, options.serves);
          process.stdout.write(`${name} serves ${options.serves.join(', ')}: written to ${policyFile}${created ? ' (made from the default policy)' : ''}; a running relais start reloads it within a second\n`);
        }
        if (issued) {
          process.stdout.write(`certificate ${issued.files.cert} and key ${issued.files.key} (give both to the client; connect with --cert and --key, client id ${name})\n`);
          process.stdout.write(`certificate fingerprint: ${issued.certificate.fingerprint}, valid until ${issued.certificate.notAfter.toISOString()}\n`);
        }
        if (token) {
          process.stdout.write(`token (shown once, keep it secret; connect with username ${name} and this password, or RELAIS_TOKEN):\n${token}\n`);
          process.stdout.write(`token fingerprint: ${fingerprint}\n`);
        }
      } catch (error) {
        if (error instanceof IdentityError || error instanceof PkiError) fail(EXIT.USAGE, error.message);
        if (error instanceof PolicyError) fail(EXIT.USAGE, `--serves: ${error.message}`);
        throw error;
      }
    });
}

/** Issues `name`'s client certificate with the CA of `--config`, written beside it (or in --out). */
async function issueFor(name: string, options: AddOptions) {
  const config = configOf(options);
  if (!config?.ca) fail(EXIT.USAGE, `--cert needs the CA: give --config <dir>/relais.json (written by relais init)${config ? '; this config has no "ca" entry' : ''}`);
  const days = Number(options.days);
  if (!Number.isInteger(days) || days < 1) fail(EXIT.USAGE, `--days must be a positive whole number, got ${options.days}`);
  const ca = { cert: readFileOption(config.ca.cert, 'the CA certificate').toString(), key: readFileOption(config.ca.key, 'the CA key').toString() };
  const certificate = await issueCertificate(ca, { commonName: name, usage: 'client', days });
  const out = path.resolve(options.out ?? path.dirname(path.resolve(options.config!)));
  fs.mkdirSync(out, { recursive: true, mode: 0o700 });
  const files = { cert: path.join(out, `${name}.crt`), key: path.join(out, `${name}.key`) };
  // 'w' not 'wx': reissuing after a revocation replaces the old files (the old certificate is refused anyway).
  fs.writeFileSync(files.cert, certificate.cert, { mode: 0o644 });
  fs.writeFileSync(files.key, certificate.key, { mode: 0o600 });
  fs.chmodSync(files.key, 0o600);
  return { certificate, files };
}

function revokeCommand(): Command {
  return withFile(new Command('revoke'))
    .description('revoke an identity: a running broker refuses its next CONNECT (no restart)')
    .argument('<name>', 'the identity')
    .action((name: string, options: FileOptions) => {
      const store = new IdentityStore(identitiesFile(options));
      if (!guarded(() => store.revoke(name))) fail(EXIT.ERROR, `no identity ${name} to revoke in ${store.file}`);
      process.stdout.write(`identity ${name} revoked\n`);
    });
}

function listCommand(): Command {
  return withFile(new Command('list'))
    .description('list the identities: name, roles, token and certificate fingerprints, created, revoked')
    .option('--json', 'one JSON line per identity (no token hash)')
    .action((options: FileOptions & { json?: boolean }) => {
      const store = new IdentityStore(identitiesFile(options));
      for (const { tokenHash: _hash, ...identity } of guarded(() => store.list())) {
        if (options.json) process.stdout.write(`${JSON.stringify(identity)}\n`);
        else {
          const certificate = identity.certificate ? `\tcertificate=${identity.certificate.fingerprint} (until ${identity.certificate.notAfter})` : '';
          process.stdout.write(`${identity.name}\troles=${identity.roles.join(',') || '-'}\tfingerprint=${identity.fingerprint ?? '-'}${certificate}\tcreated=${identity.createdAt}${identity.revoked ? `\trevoked=${identity.revoked}` : ''}\n`);
        }
      }
    });
}

export function identityCommand(): Command {
  const command = new Command('identity').description('manage identities: secret tokens, client certificates, signing and sealing keys').addCommand(addCommand()).addCommand(revokeCommand()).addCommand(listCommand());
  identityKeyCommands(command);
  return command;
}
