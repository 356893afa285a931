/** What every CLI command shares: how it finds the broker, names itself and reads JSON. */
import fs from 'node:fs';
import { hostname } from 'node:os';
import { Writable } from 'node:stream';
import { Command, Option } from 'commander';
import pino from 'pino';
import { checkTimeout, connect, DEFAULTS, SiteUnreachableError, type Bus, type ConnectOptions } from '../index.js';
import { loadSigningKeys, readPrivateKey, SigningKeysError } from '../security/signing-keys.js';

export interface GlobalOptions {
  broker: string;
  id?: string;
  ca?: string;
  cert?: string;
  key?: string;
  tokenFile?: string;
  verbose?: boolean;
  signingKey?: string;
  verifyKeys?: string;
}

/** Exit codes of `relais call` (and the others where they apply). */
/** Exit codes: NOT_CONFIRMED, an action was sent but its effect was not seen (a kill the handler did not confirm). */
export const EXIT = { OK: 0, ERROR: 1, USAGE: 2, NO_HANDLER: 3, NOT_CONFIRMED: 4, TIMEOUT: 124, INTERRUPTED: 130 } as const;

export function addConnectionOptions(command: Command): Command {
  return command
    .addOption(
      new Option('-b, --broker <url>', 'broker URL (mqtt://, mqtts://, ws://, unix:///path), or several separated by commas, the nodes of one cluster: tried in turn, and the client moves to the next when its node is lost (protocol §1.3)')
        .env('RELAIS_BROKER')
        .default(DEFAULTS.broker),
    )
    .addOption(new Option('--id <id>', 'client id on the bus (default: cli-<host>-<pid>)').env('RELAIS_ID'))
    .addOption(new Option('--ca <file>', 'PEM certificate(s) to trust for an mqtts:// or wss:// broker, besides the system ones').env('RELAIS_CA'))
    .addOption(new Option('--cert <file>', 'client certificate (PEM) for an mqtts:// broker: its CN is the identity (relais identity add --cert)').env('RELAIS_CERT'))
    .addOption(new Option('--key <file>', 'private key (PEM) of --cert').env('RELAIS_KEY'))
    .addOption(new Option('--token-file <file>', "a file holding the identity's token (relais identity add): the password, username --id").env('RELAIS_TOKEN_FILE'))
    .addOption(new Option('--signing-key <file>', 'sign what this command sends with this Ed25519 private key (relais identity keygen; protocol §12)').env('RELAIS_SIGNING_KEY'))
    .addOption(new Option('--verify-keys <file>', 'refuse received messages not signed by a key of this public keys file (protocol §12.4)').env('RELAIS_VERIFY_KEYS'))
    .option('-v, --verbose', 'log what the library does (to stderr)')
    .addHelpText('after', CREDENTIALS_HELP);
}

/** What every command's --help says about credentials (docs/security.md "CLI credentials"). */
export const CREDENTIALS_HELP = `
Credentials (every command takes them the same way):
  RELAIS_TOKEN=<token>          the identity's token (relais identity add), with --id <identity>;
                                from the environment, never on the command line (ps shows it)
  --token-file <file>           the same, read from a file (RELAIS_TOKEN_FILE)
  --cert <file> --key <file>    a client certificate over mqtts:// or wss:// (RELAIS_CERT, RELAIS_KEY);
                                its CN is the identity: give it as --id too
  --ca <file>                   the CA that signed the broker's certificate (RELAIS_CA)`;

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
  return { broker: options.broker, ...tlsOptions(options), ...(token !== undefined && { username: options.id!, password: token }) };
}

function tokenOption(options: GlobalOptions): string | undefined {
  if (options.tokenFile !== undefined) {
    const token = readFileOption(options.tokenFile, '--token-file').toString('utf8').trim();
    if (token === '') fail(EXIT.USAGE, `--token-file: ${options.tokenFile} is empty`);
    return token;
  }
  return process.env.RELAIS_TOKEN || undefined;
}

/** connectionOptions() with the signing and verifying keys (protocol §12): what a command's bus connects with. */
export function cliConnectOptions(options: GlobalOptions): Pick<ConnectOptions, 'username' | 'password' | 'tls' | 'signing' | 'verify'> & { broker: string } {
  return { ...connectionOptions(options), ...signatureOptions(options) };
}

export async function connectCli(options: GlobalOptions, extra: { ephemeral?: boolean } = {}): Promise<Bus> {
  const bus = await connect({
    id: options.id ?? defaultId(),
    ...cliConnectOptions(options),
    ephemeral: extra.ephemeral ?? true,
    logger: pino(
      { name: 'relais', level: options.verbose ? 'debug' : (process.env.RELAIS_LOG_LEVEL ?? 'warn') },
      process.env.RELAIS_LOG_FORMAT === 'json' ? pino.destination({ fd: 2, sync: true }) : readableLogLines(),
    ),
  });
  // Another client took our id (protocol §7.5); the library has said so on stderr.
  bus.on('replaced', () => void bus.close().finally(() => process.exit(EXIT.ERROR)));
  return bus;
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

/** `--signing-key` and `--verify-keys` as connect options; a bad file exits 2 naming the option, the file and the field. */
function signatureOptions(options: GlobalOptions): Pick<ConnectOptions, 'signing' | 'verify'> {
  const read = <T>(flag: string, run: () => T): T => {
    try {
      return run();
    } catch (error) {
      if (error instanceof SigningKeysError) fail(EXIT.USAGE, `${flag}: ${error.message}`);
      throw error;
    }
  };
  if (options.verifyKeys !== undefined && options.signingKey === undefined) fail(EXIT.USAGE, '--verify-keys needs --signing-key too: a client that requires signatures must sign what it sends (its own presence comes back to it)');
  return {
    ...(options.signingKey !== undefined && { signing: { privateKey: read('--signing-key', () => readPrivateKey(options.signingKey!)) } }),
    ...(options.verifyKeys !== undefined && { verify: { keys: read('--verify-keys', () => loadSigningKeys(options.verifyKeys!)) } }),
  };
}

/** A logger for a long-running command (the router): readable lines on stderr, or JSON with RELAIS_LOG_FORMAT=json. */
export function cliLogger(level: string, name: string): pino.Logger {
  return pino({ name, level: process.env.RELAIS_LOG_LEVEL ?? level }, process.env.RELAIS_LOG_FORMAT === 'json' ? pino.destination({ fd: 2, sync: true }) : readableLogLines());
}

/**
 * The library's log lines as a person reads them on stderr: `relais: warn: connection lost;
 * reconnecting (lane=main broker=...)`. RELAIS_LOG_FORMAT=json keeps pino's JSON lines.
 */
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

export function readableLogLine(line: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const { level, msg, time: _time, pid: _pid, hostname: _hostname, name: _name, ...details } = record;
  const label = typeof level === 'number' ? (pino.levels.labels[level] ?? String(level)) : String(level);
  const extra = Object.entries(details)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? printable(value) : JSON.stringify(value)}`)
    .join(' ');
  return `relais: ${label}: ${printable(String(msg ?? ''))}${extra ? ` (${extra})` : ''}`;
}

/** Text as is, or JSON-quoted when it holds control characters: remote input must not forge lines or drive the terminal. */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f]/.test(text) ? JSON.stringify(text) : text;
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

export function fail(code: number, message: string): never {
  process.stderr.write(`relais: ${message}\n`);
  process.exit(code);
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
