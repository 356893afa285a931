/** What every CLI command shares: how it finds the broker, names itself and reads JSON. */
import fs from 'node:fs';
import { hostname } from 'node:os';
import { Writable } from 'node:stream';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import pino from 'pino';
// Not '../index.js': that loads the broker, the router and SQLite, which a `relais pub` does not need.
import { connect } from '../client/connect.js';
import { checkTimeout, DEFAULTS, identityOfClientId, NotAuthorizedError, sessionClientId, SiteUnreachableError, type Bus, type ConnectOptions } from '../library.js';
import { loadSigningKeys, readPrivateKey, SigningKeysError } from '../security/signing-keys.js';
import { loadSealingKeys, readSealingPrivateKey, SealingKeysError } from '../security/sealing-keys.js';
import type { PublicSealingKey } from '../security/sealing.js';
import { certificateIdentity, connectionFailureLine } from './connection-failure.js';
import { ContextError, resolveContext } from './context-store.js';
import { CREDENTIALS_HELP } from './credentials-help.js';
import { EXIT, exitWhenWritten, fail, stdoutWritten } from './exit.js';
import { printable, readableLogLine } from '../logging/log-lines.js';

export { CREDENTIALS_HELP, EXIT, exitWhenWritten, fail, printable, readableLogLine, stdoutWritten };

export interface GlobalOptions {
  broker: string;
  /** false with --no-session: an authenticated one-shot command connects as the identity itself. */
  session?: boolean;
  id?: string;
  ca?: string;
  cert?: string;
  key?: string;
  tokenFile?: string;
  /** The saved context the connection options come from (relais context), after flags and the environment. */
  context?: string;
  verbose?: boolean;
  signingKey?: string;
  verifyKeys?: string;
  sealingKey?: string;
  sealingKeys?: string;
}

/**
 * `--directory full|on-demand` of the commands that run until stopped (`serve`, `agent`): an
 * on-demand directory follows the presences only from the first request (protocol §7.2), which a
 * fleet of handlers may never make.
 */
export function addDirectoryOption(command: Command): Command {
  return command.addOption(
    new Option('--directory <when>', "when to follow every client's presence: full (at connect) or on-demand (from the first request; for fleets of handlers, protocol §7.2)")
      .choices(['full', 'on-demand'])
      .env('RELAIS_DIRECTORY')
      .default('full'),
  );
}

export function addConnectionOptions(command: Command): Command {
  return command
    .addOption(new Option('--context <name>', 'take the broker and credentials of this saved context (relais context add); flags and RELAIS_* variables still win').env('RELAIS_CONTEXT'))
    .addOption(
      new Option('-b, --broker <url>', 'broker URL (mqtt://, mqtts://, ws://, unix:///path), or several separated by commas, the nodes of one cluster: tried in turn, and the client moves to the next when its node is lost (protocol §1.3)')
        .env('RELAIS_BROKER')
        .default(DEFAULTS.broker),
    )
    .addOption(new Option('--id <id>', 'client id on the bus (default: cli-<host>-<pid>); with a token or certificate, your identity: one-shot commands then connect as a session of it, <identity>~cli-<pid>-<random>').env('RELAIS_ID'))
    .addOption(new Option('--ca <file>', 'PEM certificate(s) to trust for an mqtts:// or wss:// broker, besides the system ones').env('RELAIS_CA'))
    .addOption(new Option('--cert <file>', 'client certificate (PEM) for an mqtts:// broker: its CN is the identity (relais identity add --cert)').env('RELAIS_CERT'))
    .addOption(new Option('--key <file>', 'private key (PEM) of --cert').env('RELAIS_KEY'))
    .addOption(new Option('--token-file <file>', "a file holding the identity's token (relais identity add): the password, username --id").env('RELAIS_TOKEN_FILE'))
    .addOption(new Option('--signing-key <file>', 'sign what this command sends with this Ed25519 private key (relais identity keygen; protocol §12)').env('RELAIS_SIGNING_KEY'))
    .addOption(new Option('--verify-keys <file>', 'refuse received messages not signed by a key of this public keys file (protocol §12.4)').env('RELAIS_VERIFY_KEYS'))
    .addOption(
      new Option('--sealing-key <file>', "open what is sealed for this identity with this X25519 private key (relais identity keygen --seal; protocol §3.6); during a rotation, the new and old keys' files separated by a comma").env(
        'RELAIS_SEALING_KEY',
      ),
    )
    .addOption(new Option('--sealing-keys <file>', 'the public sealing keys file: whom --seal and --seal-for seal for, and to whom a sealed command is answered sealed (protocol §12.5)').env('RELAIS_SEALING_KEYS'))
    .option('--no-session', 'with a token or certificate, connect as the identity itself, not a session of it (a broker without sessions: Mosquitto with the exported policy)')
    .option('-v, --verbose', 'log what the library does (to stderr)')
    .addHelpText('after', CREDENTIALS_HELP)
    .hook('preAction', (self) => applyContext(self));
}

/**
 * Fills the connection options the command line and the environment left unset from the
 * context named (--context, RELAIS_CONTEXT) or selected (relais context select): a flag beats
 * its environment variable, which beats the context, which beats the default. The certificate
 * and its key come as a pair; RELAIS_TOKEN beats a context's token file.
 */
function applyContext(command: Command): void {
  const options = command.opts<GlobalOptions>();
  let resolved: ReturnType<typeof resolveContext>;
  try {
    resolved = resolveContext(options.context || undefined); // RELAIS_CONTEXT= (empty) names none
  } catch (error) {
    if (error instanceof ContextError) fail(EXIT.USAGE, `--context: ${error.message}`);
    throw error;
  }
  if (resolved === undefined) return;
  const { name, context } = resolved;
  const unset = (key: keyof GlobalOptions) => {
    const source = command.getOptionValueSource(key);
    return source === undefined || source === 'default';
  };
  const take = (key: keyof GlobalOptions, value: string | undefined) => {
    if (value !== undefined && unset(key)) command.setOptionValueWithSource(key, value, 'config');
  };
  take('broker', context.broker);
  take('id', context.id);
  take('ca', context.ca);
  if (unset('cert') && unset('key')) {
    take('cert', context.cert);
    take('key', context.key);
  }
  if (!process.env.RELAIS_TOKEN) take('tokenFile', context.tokenFile);
  if (options.verbose) process.stderr.write(`relais: using context ${name}\n`);
}

export function defaultId(): string {
  // Dots too: the NATS MQTT gateway before 2.10 refuses topics holding one (protocol §2.1).
  const host = hostname().replace(/[^A-Za-z0-9_:@-]/g, '-').slice(0, 60) || 'host';
  return `cli-${host}-${process.pid}`;
}

/**
 * The broker and the credentials of every command, from the same flags and environment: the
 * token (RELAIS_TOKEN or --token-file, never the command line: other users see it in ps), the
 * client certificate and the CA. Exits 2 naming what is missing or unreadable.
 */
export function connectionOptions(options: GlobalOptions): Pick<ConnectOptions, 'username' | 'password' | 'tls'> & { broker: string } {
  const token = tokenOption(options);
  if (token !== undefined && options.id === undefined) fail(EXIT.USAGE, `a token (${options.tokenFile !== undefined ? '--token-file' : 'RELAIS_TOKEN'}) is the password of an identity: give it with --id <identity> (or RELAIS_ID)`);
  // The username is the identity; --id may name one of its sessions (`alice~ops`, protocol §2.1).
  return { broker: options.broker, ...tlsOptions(options), ...(token !== undefined && { username: identityOfClientId(options.id!), password: token }) };
}

function tokenOption(options: GlobalOptions): string | undefined {
  if (options.tokenFile !== undefined) {
    const token = readFileOption(options.tokenFile, '--token-file').toString('utf8').trim();
    if (token === '') fail(EXIT.USAGE, `--token-file: ${options.tokenFile} is empty`);
    return token;
  }
  return process.env.RELAIS_TOKEN || undefined;
}

/** connectionOptions() with the signing, verifying and sealing keys (protocol §12, §3.6): what a command's bus connects with. */
export function cliConnectOptions(options: GlobalOptions): Pick<ConnectOptions, 'username' | 'password' | 'tls' | 'signing' | 'verify' | 'sealing'> & { broker: string } {
  return { ...connectionOptions(options), ...signatureOptions(options), ...sealingOptions(options) };
}

/**
 * Connects a command's client, or exits 1 with one line saying why and what fixes it
 * (connection-failure.ts). `extra.info`: what the command says of itself in its presence
 * (protocol §7.1), e.g. the program it runs, besides the relais version; `extra.logger`
 * replaces the one-line stderr logger (a command that runs until stopped has --log-format).
 */
export async function connectCli(options: GlobalOptions, extra: { ephemeral?: boolean; session?: boolean; info?: Record<string, unknown>; logger?: pino.Logger; directory?: 'full' | 'on-demand' } = {}): Promise<Bus> {
  const connection = cliConnectOptions(options);
  const identity = connection.username ?? (options.cert === undefined ? undefined : certificateIdentity(options.cert));
  // A one-shot command authenticated as an identity is a session of it (protocol §2.1), so that
  // it never takes the place of a `relais serve --id <identity>` (§7.5); --id <identity>~<session> names one.
  const session = options.session !== false && (extra.session ?? extra.ephemeral ?? true) && identity !== undefined && (options.id === undefined || options.id === identity);
  const id = session ? sessionClientId(identity, oneShotSession()) : (options.id ?? defaultId());
  const open = (clientId: string) =>
    connect({
      id: clientId,
      ...connection,
      ephemeral: extra.ephemeral ?? true,
      ...(extra.directory && { directory: extra.directory }),
      info: { version: relaisVersion(), ...extra.info },
      logger:
        extra.logger ??
        pino(
          { name: 'relais', level: options.verbose ? 'debug' : (process.env.RELAIS_LOG_LEVEL ?? 'warn') },
          process.env.RELAIS_LOG_FORMAT === 'json' ? pino.destination({ fd: 2, sync: true }) : readableLogLines(),
        ),
    });
  let bus: Bus;
  try {
    try {
      bus = await open(id);
    } catch (error) {
      // A policy with sessions off (sessions.max 0, docs/security.md "Sessions") admits the identity itself only.
      if (!session || !(error instanceof NotAuthorizedError) || (error.details as { returnCode?: unknown } | undefined)?.returnCode !== 2) throw error;
      bus = await open(identity);
    }
  } catch (error) {
    // The advice names who connects: the identity, of which a one-shot command is a session.
    fail(EXIT.ERROR, connectionFailureLine(error, { broker: connection.broker, id: session ? identity : id, ca: options.ca, cert: options.cert, token: connection.password !== undefined }));
  }
  // Another client took our id (protocol §7.5); the library has said so on stderr.
  bus.on('replaced', () => void bus.close().finally(() => process.exit(EXIT.ERROR)));
  return bus;
}

/** A one-shot command's session: `cli-<pid>-<random>` (pids repeat across hosts and containers). */
function oneShotSession(): string {
  return `cli-${process.pid}-${Math.floor(Math.random() * 36 ** 4).toString(36)}`;
}

function tlsOptions(options: GlobalOptions): { tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer } } {
  if ((options.cert === undefined) !== (options.key === undefined)) fail(EXIT.USAGE, '--cert and --key go together');
  const tls = {
    ...(options.ca !== undefined && { ca: readFileOption(options.ca, '--ca') }),
    ...(options.cert !== undefined && { cert: readFileOption(options.cert, '--cert') }),
    ...(options.key !== undefined && { key: readFileOption(options.key, '--key') }),
  };
  return Object.keys(tls).length > 0 ? { tls } : {};
}

/** A keys file read for an option; a bad one exits 2 naming the option, the file and the field. */
function readKeysOption<T>(flag: string, run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof SigningKeysError || error instanceof SealingKeysError) fail(EXIT.USAGE, `${flag}: ${error.message}`);
    throw error;
  }
}

/** `--signing-key` and `--verify-keys` as connect options; a bad file exits 2 naming the option, the file and the field. */
function signatureOptions(options: GlobalOptions): Pick<ConnectOptions, 'signing' | 'verify'> {
  const read = readKeysOption;
  if (options.verifyKeys !== undefined && options.signingKey === undefined) fail(EXIT.USAGE, '--verify-keys needs --signing-key too: a client that requires signatures must sign what it sends (its own presence comes back to it)');
  return {
    ...(options.signingKey !== undefined && { signing: { privateKey: read('--signing-key', () => readPrivateKey(options.signingKey!)) } }),
    ...(options.verifyKeys !== undefined && { verify: { keys: read('--verify-keys', () => loadSigningKeys(options.verifyKeys!)) } }),
  };
}

/** The library's log lines as a person reads them on stderr: `relais: warn: connection lost; reconnecting (lane=main broker=...)`. */
function readableLogLines(): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) {
        if (line) process.stderr.write(`${readableLogLine(line)}\n`);
      }
      done();
    },
  });
}

let version: string | undefined;
/** This package's version, as presence announces it (`relais clients` shows it): from package.json, two folders up from src/cli or dist/cli. */
export function relaisVersion(): string {
  if (version === undefined) {
    try {
      const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../package.json');
      version = String((JSON.parse(fs.readFileSync(file, 'utf8')) as { version?: unknown }).version ?? 'unknown');
    } catch {
      version = 'unknown';
    }
  }
  return version;
}

/** Reads a file named by an option (a PEM certificate or key), or exits 2 saying which option and why. */
export function readFileOption(file: string, flag: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (error) {
    fail(EXIT.USAGE, `${flag}: cannot read ${file}: ${(error as Error).message}`);
  }
}

/** Parses a JSON argument or exits with a message that says where it is wrong. */
export function parseJsonArgument(text: string | undefined, what: string): unknown {
  if (text === undefined) return {};
  try {
    return JSON.parse(text);
  } catch (error) {
    fail(EXIT.USAGE, `${what} is not valid JSON: ${(error as Error).message}\n  got: ${text.slice(0, 200)}`);
  }
}

/** A duration as a person writes it: `500ms`, `30s`, `10m`, `2h`, `1d`, or plain seconds; ms, or undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) return undefined;
  return Number(match[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
}

/** `--wait-for-site`, on the commands that send requests to a client that may be on a site (protocol §13.4). */
export function addWaitForSiteOption(command: Command): Command {
  return command.option('--wait-for-site <duration>', 'when the handler is on a site whose link is down, wait this long (30s, 10m) for the link to come back instead of failing at once (exit 3); within --timeout');
}

/** `--wait-for-site` as the request option `waitForSite` (ms), or exit 2 saying what it takes. */
export function waitForSiteOption(options: { waitForSite?: string }): { waitForSite?: number } {
  if (options.waitForSite === undefined) return {};
  const ms = parseDuration(options.waitForSite);
  if (ms === undefined || !(ms >= 0) || checkTimeout(Math.max(ms, 1))) fail(EXIT.USAGE, `--wait-for-site must be a duration like 30s or 10m, got ${options.waitForSite}`);
  return { waitForSite: ms };
}

/**
 * What a command says when its request failed: one line. For a site that cannot be reached
 * (SiteUnreachableError, protocol §13.4), which site, since when, and what to do about it.
 */
export function failureLine(error: unknown, waitForSite?: string): string {
  if (!(error instanceof SiteUnreachableError)) return (error as Error).message;
  const { site, since } = error.details;
  const when = since === undefined ? '' : ` since ${new Date(since).toISOString().replace(/\.\d{3}Z$/, 'Z')}`;
  const advice = waitForSite === undefined ? '--wait-for-site 10m waits for it' : `it did not come back within --wait-for-site ${waitForSite}`;
  return `site ${printable(site)} is unreachable${when} (its link is down); ${advice}`;
}

export function writeLine(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** Runs `stop` on Ctrl-C / SIGTERM, once. Install it before printing that the command is ready: a script may signal as soon as it reads that line. */
export function onInterrupt(stop: (signal: NodeJS.Signals) => void): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    stop(signal);
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
}

/**
 * `--sealing-key` and `--sealing-keys` as the connect option `sealing` (protocol §3.6); a bad file
 * exits 2 naming the option. Without `--sealing-keys` this client seals for no one (then a sealed
 * command it serves is answered with an error, never in plaintext).
 */
function sealingOptions(options: GlobalOptions): Pick<ConnectOptions, 'sealing'> {
  if (options.sealingKey === undefined && options.sealingKeys === undefined) return {};
  // Several during a rotation: what was sealed for the old key still opens.
  const privateKeys = options.sealingKey === undefined ? [] : options.sealingKey.split(',').filter(Boolean).map((file) => readKeysOption('--sealing-key', () => readSealingPrivateKey(file)));
  const privateKey = privateKeys.length === 0 ? undefined : privateKeys.length === 1 ? privateKeys[0] : privateKeys;
  const keys = options.sealingKeys === undefined ? [] : sealingKeysOfFile(options.sealingKeys);
  return { sealing: { ...(privateKey !== undefined && { privateKey }), keys } };
}

/**
 * The keys of a sealing keys file, for each identity asked: read now (a bad file exits 2), then
 * again whenever the file changes, so that a long-running `relais serve` stops sealing for a key
 * revoked meanwhile. A file that turns unreadable keeps the keys last read, with one warning.
 */
function sealingKeysOfFile(file: string): (identity: string) => PublicSealingKey[] {
  const modified = () => fs.statSync(file, { throwIfNoEntry: false })?.mtimeMs;
  let keys = readKeysOption('--sealing-keys', () => loadSealingKeys(file));
  let readAt = modified();
  let warned = false;
  return (identity) => {
    const now = modified();
    if (now !== readAt) {
      try {
        keys = loadSealingKeys(file);
        readAt = now;
        warned = false;
      } catch (error) {
        if (!warned) process.stderr.write(`relais: --sealing-keys: ${(error as Error).message}; the keys read before stay in use\n`);
        warned = true;
      }
    }
    return keys.filter((key) => key.identity === identity);
  };
}
