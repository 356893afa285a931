/**
 * `relais init [--dir D]`: a ready secure set-up in one command (docs/security.md
 * "A secure set-up in one command"): a small CA, the broker's certificate, an administrator
 * identity (certificate and token), the default policy, and the config `relais start --config`
 * reads. Keys are written 0600 in a 0700 directory; nothing secret is printed except the
 * administrator's token, once.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { BROKER_DEFAULTS } from '../index.js';
import { defaultPolicyYaml } from '../security/default-policy.js';
import { IdentityStore } from '../security/identities.js';
import { createCertificateAuthority, issueCertificate, type IssuedCertificate } from '../security/pki.js';
import { EXIT, fail } from './common.js';
import type { StartConfig } from './start-config.js';

interface InitOptions {
  dir: string;
  name?: string[];
  admin: string;
  tlsHost: string;
  tlsPort: string;
}

export const INIT_FILES = { config: 'relais.json', caCert: 'ca.crt', caKey: 'ca.key', brokerCert: 'broker.crt', brokerKey: 'broker.key', identities: 'identities.json', policy: 'policy.yaml' } as const;

export function initCommand(): Command {
  return new Command('init')
    .description('create a secure set-up: a CA, the broker certificate, an admin identity, the default policy and a config for relais start --config')
    .option('--dir <dir>', 'where to write it (created 0700; must not hold a set-up already)', 'relais-config')
    .option('--name <host...>', 'other DNS names or addresses clients use to reach the broker (localhost, 127.0.0.1, ::1 and this host name are always in)')
    .option('--admin <name>', 'the administrator identity', 'admin')
    .option('--tls-host <host>', 'address of the TLS listener', '0.0.0.0')
    .option('--tls-port <port>', 'port of the TLS listener', String(BROKER_DEFAULTS.tlsPort))
    .exitOverride((error) => process.exit(error.exitCode === 0 ? EXIT.OK : EXIT.USAGE))
    .action(async (options: InitOptions) => {
      const dir = path.resolve(options.dir);
      const existing = Object.values(INIT_FILES).filter((file) => fs.existsSync(path.join(dir, file)));
      if (existing.length > 0) fail(EXIT.USAGE, `${dir} holds a set-up already (${existing.join(', ')}): choose another --dir, or remove it to start over (its CA and keys would be lost)`);
      const tlsPort = Number(options.tlsPort);
      if (!Number.isInteger(tlsPort) || tlsPort < 1 || tlsPort > 65535) fail(EXIT.USAGE, `--tls-port must be a port number, got ${options.tlsPort}`);
      const store = new IdentityStore(path.join(dir, INIT_FILES.identities));
      try {
        store.checkFree(options.admin, ['admin']);
      } catch (error) {
        fail(EXIT.USAGE, (error as Error).message);
      }
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      const write = (file: string, text: string, mode = 0o644) => fs.writeFileSync(path.join(dir, file), text, { mode, flag: 'wx' });

      const ca = await createCertificateAuthority(`Relais CA ${os.hostname()}`);
      write(INIT_FILES.caCert, ca.cert);
      write(INIT_FILES.caKey, ca.key, 0o600);
      const hosts = [...new Set(['localhost', '127.0.0.1', '::1', os.hostname(), ...(options.name ?? [])])];
      const broker = await issueCertificate(ca, { commonName: os.hostname(), usage: 'server', hosts });
      write(INIT_FILES.brokerCert, broker.cert);
      write(INIT_FILES.brokerKey, broker.key, 0o600);
      const admin = await issueCertificate(ca, { commonName: options.admin, usage: 'client' });
      write(`${options.admin}.crt`, admin.cert);
      write(`${options.admin}.key`, admin.key, 0o600);
      const { token, fingerprint } = await store.addWithCertificate(options.admin, ['admin'], certificateRecord(admin), true);
      write(INIT_FILES.policy, defaultPolicyYaml());
      const config: StartConfig = {
        version: 1,
        dataDir: 'data',
        host: BROKER_DEFAULTS.host,
        port: BROKER_DEFAULTS.port,
        tls: { host: options.tlsHost, port: tlsPort, cert: INIT_FILES.brokerCert, key: INIT_FILES.brokerKey, ca: INIT_FILES.caCert },
        ca: { cert: INIT_FILES.caCert, key: INIT_FILES.caKey },
        identities: INIT_FILES.identities,
        policy: INIT_FILES.policy,
        // The dashboard and HTTP API on the network too, over HTTPS with the same identities.
        web: { host: options.tlsHost, port: 8443, tls: true },
      };
      write(INIT_FILES.config, `${JSON.stringify(config, null, 2)}\n`);

      const reach = `mqtts://${hosts[3] ?? 'localhost'}:${tlsPort}`;
      process.stdout.write(
        [
          `relais: a secure set-up in ${dir}:`,
          `  ${INIT_FILES.config}      the config: relais start --config ${path.join(dir, INIT_FILES.config)}`,
          `  ${INIT_FILES.caCert} ${INIT_FILES.caKey}  the CA (keep ca.key offline if you can: it issues identities)`,
          `  ${INIT_FILES.brokerCert} ${INIT_FILES.brokerKey}  the broker's certificate, for ${hosts.join(', ')}`,
          `  ${options.admin}.crt ${options.admin}.key  the administrator's certificate (fingerprint ${admin.fingerprint})`,
          `  ${INIT_FILES.identities}  identities (hashes only); ${INIT_FILES.policy}: the default policy, commented (SIGHUP or a save reloads it)`,
          '',
          `administrator token (shown once; username ${options.admin}, fingerprint ${fingerprint}):`,
          token,
          '',
          'next:',
          `  relais start --config ${path.join(dir, INIT_FILES.config)}`,
          `  relais context add ${contextName(dir)} --broker ${reach} --ca ${path.join(dir, INIT_FILES.caCert)} --cert ${path.join(dir, `${options.admin}.crt`)} --key ${path.join(dir, `${options.admin}.key`)} --id ${options.admin} --select`,
          `  relais clients   (every command then connects as ${options.admin} over TLS; --context <name> picks another context)`,
          `  relais identity add <name> --role client --cert --config ${path.join(dir, INIT_FILES.config)}`,
          `  relais identity add <name> --role service --serves '<action>/#' --cert --config ${path.join(dir, INIT_FILES.config)}   (a service serves only what --serves grants)`,
          `  relais identity add <site> --role site --cert --config ${path.join(dir, INIT_FILES.config)}   (the other end of a link: a site at the central, the central at a site)`,
          `  https://${hosts[3] ?? 'localhost'}:8443/ : the dashboard and HTTP API (identity ${options.admin} and its token, or its certificate)`,
          '',
        ].join('\n'),
      );
    });
}

/** A context name for the set-up in `dir` (relais context add): its folder's name where it is one. */
function contextName(dir: string): string {
  const name = path.basename(dir).replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64);
  return name || 'local';
}

export function certificateRecord(issued: IssuedCertificate): { fingerprint: string; serial: string; notAfter: string } {
  return { fingerprint: issued.fingerprint, serial: issued.serial, notAfter: issued.notAfter.toISOString() };
}
