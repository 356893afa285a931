/**
 * `relais identity keygen | keys | revoke-key [--seal]`: the keys published with identities
 * (docs/security.md "Signed envelopes", "Sealed payloads"). Without `--seal`, Ed25519 signing
 * keys (protocol §12); with it, X25519 sealing keys (protocol §12.5). One set of verbs for both
 * kinds, as one keys-file mechanism serves both (src/security/keys-file.ts). The private key goes
 * to a file of its own (mode 0600); the public keys file is what every verifying receiver
 * (`--verify-keys`) or sealing sender (`--sealing-keys`) reads.
 */
import path from 'node:path';
import { Command } from 'commander';
import { generateSealingKey, listSealingKeys, revokeSealingKey, SealingKeysError } from '../security/sealing-keys.js';
import { generateSigningKey, listSigningKeys, revokeSigningKey, SigningKeysError } from '../security/signing-keys.js';
import type { KeyRecord } from '../security/keys-file.js';
import { EXIT, fail } from './common.js';

/** What differs between the two kinds of key, as the CLI says it. */
interface KeyKindCli {
  /** `signing` or `sealing`. */
  name: string;
  fileName: string;
  /** The option a client gives the private key with, and what the key does, for keygen's hint. */
  privateKeyOption: string;
  generate(file: string, identity: string, outDir: string): { kid: string; privateKeyFile: string };
  list(file: string): KeyRecord[];
  revoke(file: string, kid: string): boolean;
}

const SIGNING: KeyKindCli = { name: 'signing', fileName: 'signing-keys.json', privateKeyOption: '--signing-key', generate: generateSigningKey, list: listSigningKeys, revoke: revokeSigningKey };
const SEALING: KeyKindCli = { name: 'sealing', fileName: 'sealing-keys.json', privateKeyOption: '--sealing-key', generate: generateSealingKey, list: listSealingKeys, revoke: revokeSealingKey };

interface KeysFileOptions {
  dataDir: string;
  file?: string;
  seal?: boolean;
}

function kindOf(options: KeysFileOptions): KeyKindCli {
  return options.seal ? SEALING : SIGNING;
}

function keysFile(options: KeysFileOptions): string {
  return path.resolve(options.file ?? path.join(options.dataDir, kindOf(options).fileName));
}

function withKeysFile(command: Command): Command {
  return command
    .exitOverride((error) => process.exit(error.exitCode === 0 ? EXIT.OK : EXIT.USAGE))
    .option('--seal', 'X25519 sealing keys (protocol §3.6, §12.5; <data-dir>/sealing-keys.json) instead of Ed25519 signing keys')
    .option('-d, --data-dir <dir>', 'data directory (the public keys are <dir>/signing-keys.json, with --seal <dir>/sealing-keys.json)', process.env.RELAIS_DATA_DIR ?? '.relais')
    .option('--file <file>', 'the public keys file (instead of the one in <data-dir>)');
}

function guarded<T>(run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof SigningKeysError || error instanceof SealingKeysError) fail(EXIT.USAGE, error.message);
    throw error;
  }
}

function keygenCommand(): Command {
  return withKeysFile(new Command('keygen'))
    .description(
      'make a key for an identity: private key to <out>/<name>.key (Ed25519, signs its messages) or, with --seal, <out>/<name>.sealing.key (X25519, opens what is sealed for it), mode 0600; public key registered in the keys file',
    )
    .argument('<name>', 'the identity (client id) the key belongs to')
    .option('--out <dir>', 'where to write the private key (default <data-dir>/keys)')
    .action((name: string, options: KeysFileOptions & { out?: string }) => {
      const kind = kindOf(options);
      const file = keysFile(options);
      const { kid, privateKeyFile } = guarded(() => kind.generate(file, name, options.out ?? path.join(options.dataDir, 'keys')));
      process.stdout.write(`${kind.name} key ${kid} for ${name} registered in ${file}\n`);
      process.stdout.write(`private key: ${privateKeyFile} (keep it on ${name}'s host only; connect with ${kind.privateKeyOption} ${privateKeyFile})\n`);
      process.stdout.write(`${kid}\n`);
    });
}

function keysCommand(): Command {
  return withKeysFile(new Command('keys'))
    .description('list the signing keys (with --seal, the sealing keys): key id, identity, created, revoked')
    .option('--json', 'one JSON line per key (with its public key)')
    .action((options: KeysFileOptions & { json?: boolean }) => {
      for (const record of guarded(() => kindOf(options).list(keysFile(options)))) {
        if (options.json) process.stdout.write(`${JSON.stringify(record)}\n`);
        else process.stdout.write(`${record.kid}\t${record.identity}\tcreated=${record.createdAt}${record.revoked ? `\trevoked=${record.revoked}` : ''}\n`);
      }
    });
}

function revokeKeyCommand(): Command {
  return withKeysFile(new Command('revoke-key'))
    .description('revoke a signing key (receivers that read the keys file again refuse what it signs) or, with --seal, a sealing key (senders that read it again no longer seal for it)')
    .argument('<kid>', 'the key id (relais identity keys [--seal])')
    .action((kid: string, options: KeysFileOptions) => {
      const kind = kindOf(options);
      if (!guarded(() => kind.revoke(keysFile(options), kid))) fail(EXIT.ERROR, `no unrevoked ${kind.name} key ${kid} in ${keysFile(options)}`);
      process.stdout.write(`${kind.name} key ${kid} revoked\n`);
    });
}

/** Adds the key sub-commands to `relais identity`. */
export function identityKeyCommands(identity: Command): void {
  identity.addCommand(keygenCommand()).addCommand(keysCommand()).addCommand(revokeKeyCommand());
}
