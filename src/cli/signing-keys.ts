/**
 * `relais identity keygen | keys | revoke-key`: Ed25519 signing keys of identities
 * (docs/security.md "Signed envelopes"). The private key goes to a file of its own (mode 0600);
 * the public keys file is what every verifying receiver reads (`--verify-keys`).
 */
import path from 'node:path';
import { Command } from 'commander';
import { generateSigningKey, listSigningKeys, revokeSigningKey, SigningKeysError } from '../security/signing-keys.js';
import { EXIT, fail } from './common.js';

interface KeysFileOptions {
  dataDir: string;
  file?: string;
}

function keysFile(options: KeysFileOptions): string {
  return path.resolve(options.file ?? path.join(options.dataDir, 'signing-keys.json'));
}

function withKeysFile(command: Command): Command {
  return command
    .exitOverride((error) => process.exit(error.exitCode === 0 ? EXIT.OK : EXIT.USAGE))
    .option('-d, --data-dir <dir>', 'data directory (the public keys are <dir>/signing-keys.json)', process.env.RELAIS_DATA_DIR ?? '.relais')
    .option('--file <file>', 'the public signing keys file (instead of <data-dir>/signing-keys.json)');
}

function guarded<T>(run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof SigningKeysError) fail(EXIT.USAGE, error.message);
    throw error;
  }
}

function keygenCommand(): Command {
  return withKeysFile(new Command('keygen'))
    .description('make an Ed25519 signing key for an identity: private key to <out>/<name>.key (mode 0600), public key registered in the keys file')
    .argument('<name>', 'the identity (client id) whose messages the key signs')
    .option('--out <dir>', 'where to write the private key (default <data-dir>/keys)')
    .action((name: string, options: KeysFileOptions & { out?: string }) => {
      const file = keysFile(options);
      const { kid, privateKeyFile } = guarded(() => generateSigningKey(file, name, options.out ?? path.join(options.dataDir, 'keys')));
      process.stdout.write(`signing key ${kid} for ${name} registered in ${file}\n`);
      process.stdout.write(`private key: ${privateKeyFile} (keep it on ${name}'s host only; connect with --signing-key ${privateKeyFile})\n`);
      process.stdout.write(`${kid}\n`);
    });
}

function keysCommand(): Command {
  return withKeysFile(new Command('keys'))
    .description('list the signing keys: key id, identity, created, revoked')
    .option('--json', 'one JSON line per key (with its public key)')
    .action((options: KeysFileOptions & { json?: boolean }) => {
      for (const record of guarded(() => listSigningKeys(keysFile(options)))) {
        if (options.json) process.stdout.write(`${JSON.stringify(record)}\n`);
        else process.stdout.write(`${record.kid}\t${record.identity}\tcreated=${record.createdAt}${record.revoked ? `\trevoked=${record.revoked}` : ''}\n`);
      }
    });
}

function revokeKeyCommand(): Command {
  return withKeysFile(new Command('revoke-key'))
    .description('revoke a signing key: receivers that read the keys file again refuse what it signs')
    .argument('<kid>', 'the key id (relais identity keys)')
    .action((kid: string, options: KeysFileOptions) => {
      if (!guarded(() => revokeSigningKey(keysFile(options), kid))) fail(EXIT.ERROR, `no unrevoked signing key ${kid} in ${keysFile(options)}`);
      process.stdout.write(`signing key ${kid} revoked\n`);
    });
}

/** Adds the signing key sub-commands to `relais identity`. */
export function signingKeyCommands(identity: Command): void {
  identity.addCommand(keygenCommand()).addCommand(keysCommand()).addCommand(revokeKeyCommand());
}
