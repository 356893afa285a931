/** `relais router`: the router alone, against any broker (Mosquitto, a cluster); `relais start` runs it for you. */
import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import { kvConfigSchema, type KvConfig } from '../protocol/kv.js';
import type { HistoryRetention } from '../router/history-store.js';
import { KILL_BY, type KillBy } from '../router/kill-service.js';
import { startRouter, ROUTER_DEFAULTS, type Router } from '../router/router.js';
import { checkSiteName } from '../protocol/sites.js';
import { redactStoreUrl } from '../router/store-url.js';
import { addConnectionOptions, connectionOptions, fail, EXIT, onInterrupt, printable, type GlobalOptions } from './common.js';
import { addLogFormatOption, logFormatOf } from './log-lines.js';
import { commandLogger } from '../logging/log-lines.js';

export interface RouterSettingsOptions {
  dataDir: string;
  database?: string;
  /** `--store postgres://…`: the history and events in a database several routers share. */
  store?: string;
  maxData: string;
  keepDays: string;
  keepRows: string;
  admin?: string[];
  killBy?: string;
  siteSyncInterval: string;
  siteSyncTimeout: string;
  /** `relais router --site`, and `relais start --site` (protocol §13): the site this router is. */
  site?: string;
  /** `--kv-config <file>`: the key-value store's buckets (protocol §14.2), JSON or YAML. */
  kvConfig?: string;
}

interface RouterCommandOptions extends GlobalOptions, RouterSettingsOptions {
  logFormat?: string;
  identities?: string;
  policy?: string;
}

export function routerOptions(command: Command): Command {
  return command
    .option('--database <file>', 'history SQLite file (default: <data-dir>/history.db)')
    .addOption(
      new Option('--store <url>', 'keep the history and events in PostgreSQL (postgres://user@host/db, or ?host=/socket/dir) instead of SQLite: routers on several nodes share it, each under its own --id').env(
        'RELAIS_STORE',
      ),
    )
    .option('--max-data <bytes>', 'payload JSON kept per history row; longer ones are cut and flagged truncated', String(ROUTER_DEFAULTS.maxDataBytes))
    .option('--keep-days <days>', 'history retention by age', String(ROUTER_DEFAULTS.retention.maxAgeMs / 86_400_000))
    .option('--keep-rows <rows>', 'history retention by row count', String(ROUTER_DEFAULTS.retention.maxRows))
    .option('--admin <id...>', "client ids allowed to kill anyone's request (default: each requester only its own)")
    .option('--kill-by <who>', "who may kill a request besides --admin: identity (its requester's) or anyone (relais start's default without security; otherwise identity)")
    .option('--site-sync-interval <ms>', "how often the history of each site whose link is up is pulled, besides after each reconnection (protocol §13.5)", String(ROUTER_DEFAULTS.siteSyncIntervalMs))
    .option('--site-sync-timeout <ms>', "how long one pull of a site's history may hold that site's lock; the next one goes on from where it stopped", String(ROUTER_DEFAULTS.siteSyncTimeoutMs))
    .option('--kv-config <file>', "the key-value store's buckets, JSON or YAML: {buckets: {<name>: {historyDepth, maxValueBytes, ttl}}, defaults, createOnPut} (protocol §14.2, docs/kv.md)");
}

/** What the command line sets of the router's options: its stores are SQLite ones in `database`, or those at `store`. */
export interface RouterSettings {
  database: string;
  store?: string;
  maxDataBytes: number;
  retention: HistoryRetention;
  admins: string[];
  killBy: KillBy;
  site: string;
  siteSyncIntervalMs: number;
  siteSyncTimeoutMs: number;
  kv?: KvConfig;
}

/** The router's settings from the command line; exits 2 on a bad value. */
export function routerSettings(options: RouterSettingsOptions, secured = true): RouterSettings {
  const positive = (text: string, flag: string) => {
    const value = Number(text);
    if (!(value > 0) || !Number.isFinite(value)) fail(EXIT.USAGE, `${flag} must be a positive number, got ${text}`);
    return value;
  };
  return {
    database: options.database ?? path.join(options.dataDir, 'history.db'),
    ...(options.store !== undefined && { store: storeOption(options.store, options.database) }),
    maxDataBytes: Math.floor(positive(options.maxData, '--max-data')),
    retention: { maxAgeMs: positive(options.keepDays, '--keep-days') * 86_400_000, maxRows: Math.floor(positive(options.keepRows, '--keep-rows')) },
    admins: options.admin ?? [],
    killBy: killByOption(options.killBy, secured),
    site: siteOption(options.site),
    siteSyncIntervalMs: wholeMs(options.siteSyncInterval, '--site-sync-interval'),
    siteSyncTimeoutMs: wholeMs(options.siteSyncTimeout, '--site-sync-timeout'),
    ...(options.kvConfig !== undefined && { kv: kvConfigOption(options.kvConfig) }),
  };
}

/** The key-value store's settings from their file; exits 2 naming the field when they are not valid. */
function kvConfigOption(file: string): KvConfig {
  let data: unknown;
  try {
    data = parseYaml(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    fail(EXIT.USAGE, `--kv-config ${printable(file)}: ${(error as Error).message}`);
  }
  const parsed = kvConfigSchema.safeParse(data ?? {});
  if (!parsed.success) fail(EXIT.USAGE, `--kv-config ${printable(file)}: ${parsed.error.issues.map((issue) => `${issue.path.join('.') || '(top level)'}: ${issue.message}`).join('; ')}`);
  return data as KvConfig;
}

/** Where the router says it records: the store URL redacted (it may hold a password), or the SQLite file. */
export function recordingTo(settings: Pick<RouterSettings, 'database' | 'store'>): string {
  return settings.store !== undefined ? redactStoreUrl(settings.store) : settings.database;
}

function storeOption(given: string, database: string | undefined): string {
  if (database !== undefined) fail(EXIT.USAGE, '--store and --database: one or the other (--store keeps both the history and the events in the database it names)');
  if (!/^postgres(ql)?:\/\//i.test(given)) fail(EXIT.USAGE, `--store: ${printable(redactStoreUrl(given))}: the URL must start with postgres:// or postgresql://`);
  return given;
}

function siteOption(given: string | undefined): string {
  if (given === undefined) return ROUTER_DEFAULTS.site;
  const problem = checkSiteName(given);
  if (problem) fail(EXIT.USAGE, `--site: ${problem}`);
  return given;
}

/** A duration in whole ms, at least 1 and at most a timer's limit. */
function wholeMs(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1 || value > 2 ** 31 - 1) fail(EXIT.USAGE, `${flag} must be a whole number of ms from 1 to ${2 ** 31 - 1}, got ${text}`);
  return value;
}

/** Without security any client id can be claimed, so a rule by identity would only get in the way (protocol §11.5). */
function killByOption(given: string | undefined, secured: boolean): KillBy {
  if (given === undefined) return secured ? 'identity' : 'anyone';
  if (!(KILL_BY as readonly string[]).includes(given)) fail(EXIT.USAGE, `--kill-by must be ${KILL_BY.join(' or ')}, got ${given}`);
  return given as KillBy;
}

export function routerCommand(): Command {
  return addLogFormatOption(routerOptions(addConnectionOptions(new Command('router'))))
    .addOption(new Option('-d, --data-dir <dir>', 'data directory (holds history.db)').env('RELAIS_DATA_DIR').default('.relais'))
    .option('--identities <file>', "the broker's identities file: the history is then private, each identity reads the rows of its own requests (protocol §11.2)")
    .option('--policy <file>', 'with --identities: the policy whose history:read-all grant lets a role read every row (default: the default policy)')
    .option('--site <name>', `the site this router is (protocol §13): it pulls the history of every other site whose roster it reads, asking as this name`, ROUTER_DEFAULTS.site)
    .description('run the router alone against a broker: request history, client registry (relais start already runs one)')
    .action(async (options: RouterCommandOptions) => {
      const settings = routerSettings(options);
      if (options.policy !== undefined && options.identities === undefined) fail(EXIT.USAGE, '--policy needs --identities: the roles of each identity come from it');
      // The router answers for the bus (its presence says role "router"): it does not sign yet (docs/security.md "Signed envelopes").
      if (options.signingKey !== undefined || options.verifyKeys !== undefined) fail(EXIT.USAGE, 'relais router does not sign or verify envelopes yet: leave out --signing-key and --verify-keys');
      // Its identity is relais-router unless --id says otherwise: a token is that identity's.
      const id = options.id ?? ROUTER_DEFAULTS.id;
      let router: Router;
      try {
        router = await startRouter({
          ...settings,
          ...connectionOptions({ ...options, id }),
          id,
          ...(options.identities !== undefined && { access: { identities: path.resolve(options.identities), ...(options.policy !== undefined && { policy: path.resolve(options.policy) }) } }),
          logger: commandLogger(options.verbose ? 'debug' : 'info', 'relais-router', logFormatOf(options)),
        });
      } catch (error) {
        fail(EXIT.ERROR, `the router did not start: ${(error as Error).message}`);
      }
      onInterrupt(async (signal) => {
        process.stdout.write(`relais: ${signal} received, stopping the router\n`);
        await router.close();
        process.exit(EXIT.OK);
      });
      process.stdout.write(`relais: router recording the history to ${recordingTo(settings)}; Ctrl-C stops\n`);
    });
}
