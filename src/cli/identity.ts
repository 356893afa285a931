/** `relais identity add | revoke | list`: identities with secret tokens (issue 7 §1, docs/security.md). */
import path from 'node:path';
import { Command } from 'commander';
import { IdentityError, IdentityStore } from '../security/identities.js';
import { EXIT, fail } from './common.js';

interface FileOptions {
  dataDir: string;
  file?: string;
}

/** Usage mistakes exit 2 (Commander's own exit code is 1). */
const usageExits = (command: Command) => command.exitOverride((error) => process.exit(error.exitCode === 0 ? EXIT.OK : EXIT.USAGE));

function withFile(command: Command): Command {
  return usageExits(command)
    .option('-d, --data-dir <dir>', 'data directory (the identities are <dir>/identities.json)', process.env.RELAIS_DATA_DIR ?? '.relais')
    .option('--file <file>', 'the identities file (instead of <data-dir>/identities.json)');
}

export function identitiesFile(options: FileOptions): string {
  return path.resolve(options.file ?? path.join(options.dataDir, 'identities.json'));
}

function guarded<T>(run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof IdentityError) fail(EXIT.USAGE, error.message);
    throw error;
  }
}

function addCommand(): Command {
  return withFile(new Command('add'))
    .description('add an identity with a new secret token; the token is printed once, only its hash is stored')
    .argument('<name>', 'the identity: MQTT username and client id (its real-time lane is <name>~rt)')
    .option('--role <role...>', 'roles of the identity in the policy (client, service, admin, observer, router in the default one)')
    .option('--token', 'issue a secret token (the only kind of credential so far; the default)')
    .action(async (name: string, options: FileOptions & { role?: string[] }) => {
      const store = new IdentityStore(identitiesFile(options));
      try {
        const { token, fingerprint } = await store.add(name, options.role ?? []);
        process.stdout.write(`identity ${name} added to ${store.file}${options.role?.length ? ` (roles: ${options.role.join(', ')})` : ''}\n`);
        process.stdout.write(`token (shown once, keep it secret; connect with username ${name} and this password):\n${token}\n`);
        process.stdout.write(`fingerprint: ${fingerprint}\n`);
      } catch (error) {
        if (error instanceof IdentityError) fail(EXIT.USAGE, error.message);
        throw error;
      }
    });
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
    .description('list the identities: name, roles, token fingerprint, created, revoked')
    .option('--json', 'one JSON line per identity (no token hash)')
    .action((options: FileOptions & { json?: boolean }) => {
      const store = new IdentityStore(identitiesFile(options));
      for (const { tokenHash: _hash, ...identity } of guarded(() => store.list())) {
        if (options.json) process.stdout.write(`${JSON.stringify(identity)}\n`);
        else process.stdout.write(`${identity.name}\troles=${identity.roles.join(',') || '-'}\tfingerprint=${identity.fingerprint ?? '-'}\tcreated=${identity.createdAt}${identity.revoked ? `\trevoked=${identity.revoked}` : ''}\n`);
      }
    });
}

export function identityCommand(): Command {
  return new Command('identity').description('manage identities and their secret tokens').addCommand(addCommand()).addCommand(revokeCommand()).addCommand(listCommand());
}
