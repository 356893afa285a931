/**
 * `relais kv`: the router's key-value store (protocol §14, docs/kv.md "The CLI") from a shell:
 * `get`, `put`, `del`, `ls`, `history`, `watch`, `buckets`. Aligned text on a terminal, one JSON
 * line per entry (the wire form: bytes as `{ "$base64": … }`) in a pipe or with `--json`.
 *
 * Exit codes: 0 done; 1 the key has no value (`get`), or another failure, one line on stderr;
 * 2 a usage mistake; 3 no router answers; 5 a compare-and-set (`--expect-revision`) found
 * another revision, the line naming the current one.
 */
import fs from 'node:fs';
import { Command } from 'commander';
import type { Bus, KvValueEntry } from '../library.js';
import { fromBase64, isBase64Value, toBase64 } from '../protocol/binary.js';
import { NotAuthorizedError } from '../protocol/errors.js';
import {
  BucketNotFoundError,
  isUpToDate,
  KeyNotFoundError,
  KV_ACTIONS,
  kvErrorOf,
  RevisionConflictError,
  ValueTooLargeError,
  type KvBucketInfo,
  type KvBuckets,
  type KvChange,
  type KvEntry,
  type KvHistory,
  type KvKeysPage,
  type KvWritten,
} from '../protocol/kv.js';
import { bytesSummary } from './binary-payload.js';
import { addConnectionOptions, EXIT, fail, parseDuration, writeLine, type GlobalOptions } from './common.js';
import { withRouter } from './router-client.js';
import { formatColumns } from './table.js';

/** What the commands that ask the router say when none answers. */
const NEEDS = 'the key-value store is served by the router';

/** A compare-and-set lost: exit 5, so that a script can read again and retry. */
export const KV_EXIT = { ...EXIT, CONFLICT: 5 } as const;

interface OutputOptions extends GlobalOptions {
  json?: boolean;
}

/** Usage mistakes exit 2 (Commander's own exit code is 1). */
const usageExits = (command: Command) => command.exitOverride((error) => process.exit(error.exitCode === 0 ? EXIT.OK : EXIT.USAGE));

const terminal = (options: OutputOptions) => process.stdout.isTTY === true && !options.json;

/** A whole number option (a revision, a limit), or exit 2 naming it. */
function wholeNumber(text: string | undefined, flag: string, min = 0): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min) fail(EXIT.USAGE, `${flag} must be a whole number${min > 0 ? ` from ${min}` : ''}, got ${text}`);
  return value;
}

/** A value as one short line: JSON text, a string as JSON, bytes as their size and digest. */
export function briefValue(value: unknown, max = 60): string {
  if (isBase64Value(value)) return wireBytesSummary(value);
  const text = JSON.stringify(value) ?? 'null';
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** `<12 bytes sha256 1f2e3d4c…>`: bytes shown as the other commands show them, never printed. */
const wireBytesSummary = (value: { $base64: string }) => bytesSummary(fromBase64(value));

const time = (ms: number | undefined) => (ms === undefined ? '-' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19));

/** An entry as a person reads it: a heading line, then its value (pretty JSON, a string as is, bytes summarised). */
export function formatEntry(entry: KvEntry): string {
  const ttl = entry.expires !== undefined ? `, expires ${time(entry.expires)}` : '';
  const head = `${entry.bucket}/${entry.key}  revision ${entry.revision}  ${entry.operation === 'put' ? 'updated' : entry.operation === 'expire' ? 'expired' : 'deleted'} ${time(entry.updated)} by ${entry.author}${ttl}`;
  if (entry.operation !== 'put') return head;
  const value = isBase64Value(entry.value) ? wireBytesSummary(entry.value) : typeof entry.value === 'string' ? entry.value : JSON.stringify(entry.value, null, 2);
  return `${head}\n${value}`;
}

/** A key's revisions as a table, oldest first. */
export function formatHistory(entries: readonly KvEntry[]): string {
  const rows = entries.map((entry) => [String(entry.revision), entry.operation, time(entry.updated), entry.author, entry.operation === 'put' ? briefValue(entry.value) : '-']);
  return `${formatColumns(['REVISION', 'OPERATION', 'UPDATED', 'AUTHOR', 'VALUE'], rows)}\n${rows.length} revision${rows.length === 1 ? '' : 's'}`;
}

export function formatBuckets(buckets: readonly KvBucketInfo[]): string {
  const size = (bytes: number) => (bytes >= 1024 ? `${Math.round(bytes / 1024)} KiB` : `${bytes} B`);
  const ttl = (ms: number | undefined) => (ms === undefined ? '-' : `${Math.round(ms / 1000)} s`);
  const rows = [...buckets].sort((a, b) => a.name.localeCompare(b.name)).map((bucket) => [bucket.name, String(bucket.keys), String(bucket.revision), String(bucket.historyDepth), size(bucket.maxValueBytes), ttl(bucket.ttl)]);
  return `${formatColumns(['BUCKET', 'KEYS', 'REVISION', 'HISTORY', 'MAX VALUE', 'TTL'], rows)}\n${rows.length} bucket${rows.length === 1 ? '' : 's'}`;
}

/** `#12 12:44:01.123 put config/alpha {"level":3} by alice` */
export function formatChange(change: KvChange): string {
  const value = change.operation === 'put' ? ` ${briefValue(change.value, 120)}` : '';
  return `#${change.revision} ${new Date(change.updated).toISOString().slice(11, 23)} ${change.operation} ${change.bucket}/${change.key}${value} by ${change.author}`;
}

/**
 * A failed KV request as the command ends on it: the typed errors of protocol §14.5 as one
 * line each and their exit code; anything else is withRouter's (a line, exit 1).
 */
function kvFailure(error: unknown): number {
  const typed = kvErrorOf(error);
  if (typed instanceof RevisionConflictError) {
    const { bucket, key, expectedRevision, currentRevision } = typed.details;
    const now = currentRevision === 0 ? 'it has no value' : `it is at revision ${currentRevision}`;
    process.stderr.write(`relais: ${bucket}/${key} changed: expected revision ${expectedRevision}, ${now}\n`);
    return KV_EXIT.CONFLICT;
  }
  if (typed instanceof KeyNotFoundError) {
    const { bucket, key, revision } = typed.details;
    process.stderr.write(`relais: ${bucket}/${key}: ${revision === undefined ? 'no such key' : `revision ${revision} is not kept`}\n`);
    return EXIT.ERROR;
  }
  if (typed instanceof BucketNotFoundError) {
    process.stderr.write(`relais: no bucket ${typed.details.bucket}, and the router's configuration does not let a put make one\n`);
    return EXIT.ERROR;
  }
  if (typed instanceof ValueTooLargeError) {
    const { bucket, size, max } = typed.details;
    process.stderr.write(`relais: the value is ${size} bytes; bucket ${bucket} takes at most ${max}\n`);
    return EXIT.ERROR;
  }
  if (typed instanceof NotAuthorizedError || (error as { code?: unknown })?.code === 4) {
    process.stderr.write(`relais: not authorised: ${(error as Error).message}\n`);
    return EXIT.ERROR;
  }
  throw typed;
}

/** Runs one KV request for a sub-command: withRouter, the typed failures as kvFailure says. */
function runKv(options: GlobalOptions, action: string, work: (bus: Bus, signal: AbortSignal) => Promise<void | number>): Promise<never> {
  return withRouter(options, action, NEEDS, async (bus, signal) => {
    try {
      return await work(bus, signal);
    } catch (error) {
      return kvFailure(error);
    }
  });
}

function getCommand(): Command {
  return usageExits(addConnectionOptions(new Command('get')))
    .description('print a key\'s value, with its revision, when and by whom it was written (a JSON line in a pipe)')
    .argument('<bucket>')
    .argument('<key>')
    .option('-r, --revision <n>', 'a past revision, while the history keeps it')
    .option('--raw', 'the value alone: bytes as they are, a string as its text, other JSON as JSON')
    .option('--json', 'a JSON line even on a terminal')
    .action(async (bucket: string, key: string, options: OutputOptions & { revision?: string; raw?: boolean }) => {
      const revision = wholeNumber(options.revision, '--revision', 1);
      await runKv(options, KV_ACTIONS.get, async (bus) => {
        const entry = await bus.request<KvEntry>(KV_ACTIONS.get, { bucket, key, ...(revision !== undefined && { revision }) });
        if (options.raw) return void writeRaw(entry.value);
        if (terminal(options)) process.stdout.write(`${formatEntry(entry)}\n`);
        else writeLine(entry);
      });
    });
}

/** An entry as the wire has it (bytes as `{ "$base64": … }`): what a JSON line shows. */
function onWire(entry: KvValueEntry): KvChange {
  return (entry.value instanceof Uint8Array ? { ...entry, value: toBase64(entry.value) } : entry) as KvChange;
}

function writeRaw(value: unknown): void {
  if (isBase64Value(value)) process.stdout.write(fromBase64(value));
  else process.stdout.write(typeof value === 'string' ? value : `${JSON.stringify(value)}\n`);
}

interface PutOptions extends GlobalOptions {
  json?: boolean;
  file?: string;
  expectRevision?: string;
  ttl?: string;
}

/** The value `put` writes: the argument as a string, or as JSON with --json; a file's bytes with --file (its text as JSON with --json). */
export function putValue(argument: string | undefined, options: Pick<PutOptions, 'json' | 'file'>, readFile: (file: string) => Buffer = readValueFile): unknown {
  if (argument !== undefined && options.file !== undefined) fail(EXIT.USAGE, 'give the value as an argument or with --file, not both');
  if (argument === undefined && options.file === undefined) fail(EXIT.USAGE, 'give the value: an argument (text; JSON with --json) or --file <path> (- for standard input)');
  const source = argument ?? readFile(options.file!);
  if (!options.json) return typeof source === 'string' ? source : toBase64(source);
  const text = source.toString();
  try {
    return JSON.parse(text);
  } catch (error) {
    fail(EXIT.USAGE, `--json: the value is not valid JSON: ${(error as Error).message}\n  got: ${text.slice(0, 200)}`);
  }
}

function readValueFile(file: string): Buffer {
  try {
    return fs.readFileSync(file === '-' ? 0 : file);
  } catch (error) {
    fail(EXIT.USAGE, `--file: cannot read ${file}: ${(error as Error).message}`);
  }
}

function putCommand(): Command {
  return usageExits(addConnectionOptions(new Command('put')))
    .description('write a value: text, JSON (--json) or a file\'s bytes (--file); prints the revision it got')
    .argument('<bucket>')
    .argument('<key>')
    .argument('[value]', 'the value as text (a JSON string); with --json, JSON text')
    .option('--json', 'the value (argument or --file) is JSON, stored as such')
    .option('-f, --file <path>', 'the value is this file\'s bytes (- for standard input); with --json, its JSON')
    .option('--expect-revision <n>', 'compare-and-set: write only if the key is at this revision (0: only if it has no value); else exit 5')
    .option('--ttl <duration>', 'the value expires after this long (30s, 10m, 1d; at least 1s)')
    .action(async (bucket: string, key: string, argument: string | undefined, options: PutOptions) => {
      const value = putValue(argument, options);
      const expectRevision = wholeNumber(options.expectRevision, '--expect-revision');
      const ttl = options.ttl === undefined ? undefined : parseDuration(options.ttl);
      if (options.ttl !== undefined && (ttl === undefined || ttl < 1000)) fail(EXIT.USAGE, `--ttl must be a duration of at least 1s, like 30s, 10m or 1d, got ${options.ttl}`);
      await runKv(options, KV_ACTIONS.put, async (bus) => {
        const { revision } = await bus.request<KvWritten>(KV_ACTIONS.put, { bucket, key, value, ...(expectRevision !== undefined && { expectRevision }), ...(ttl !== undefined && { ttl }) });
        if (process.stdout.isTTY) process.stdout.write(`${bucket}/${key}: revision ${revision}\n`);
        else writeLine({ bucket, key, revision });
      });
    });
}

function delCommand(): Command {
  return usageExits(addConnectionOptions(new Command('del')))
    .description('delete a key: a tombstone revision, which its history keeps; prints that revision')
    .argument('<bucket>')
    .argument('<key>')
    .option('--expect-revision <n>', 'compare-and-set: delete only if the key is at this revision; else exit 5')
    .action(async (bucket: string, key: string, options: GlobalOptions & { expectRevision?: string }) => {
      const expectRevision = wholeNumber(options.expectRevision, '--expect-revision');
      await runKv(options, KV_ACTIONS.delete, async (bus) => {
        const { revision } = await bus.request<KvWritten>(KV_ACTIONS.delete, { bucket, key, ...(expectRevision !== undefined && { expectRevision }) });
        if (process.stdout.isTTY) process.stdout.write(`${bucket}/${key}: deleted at revision ${revision}\n`);
        else writeLine({ bucket, key, revision, operation: 'delete' });
      });
    });
}

function lsCommand(): Command {
  return usageExits(addConnectionOptions(new Command('ls')))
    .description('list the keys of a bucket that have a value, in order (one JSON line per key in a pipe)')
    .argument('<bucket>')
    .option('-p, --prefix <prefix>', 'only the keys that start with it')
    .option('-n, --limit <n>', 'at most this many keys (default: all, asked a page at a time)')
    .option('--json', 'JSON lines even on a terminal')
    .action(async (bucket: string, options: OutputOptions & { prefix?: string; limit?: string }) => {
      const limit = wholeNumber(options.limit, '--limit', 1);
      await runKv(options, KV_ACTIONS.keys, async (bus) => {
        let count = 0;
        let after: string | undefined;
        for (let more = true; more && (limit === undefined || count < limit); ) {
          const page = await bus.request<KvKeysPage>(KV_ACTIONS.keys, {
            bucket,
            ...(options.prefix !== undefined && { prefix: options.prefix }),
            ...(after !== undefined && { after }),
            ...(limit !== undefined && { limit: Math.min(limit - count, 10_000) }),
          });
          for (const key of page.keys) {
            if (terminal(options)) process.stdout.write(`${key}\n`);
            else writeLine({ bucket, key });
          }
          count += page.keys.length;
          after = page.keys.at(-1);
          more = page.more && after !== undefined;
        }
        if (terminal(options)) process.stdout.write(`${count} key${count === 1 ? '' : 's'}\n`);
      });
    });
}

function historyCommand(): Command {
  return usageExits(addConnectionOptions(new Command('history')))
    .description("a key's kept revisions, oldest first, deletions included (a table on a terminal, JSON lines otherwise)")
    .argument('<bucket>')
    .argument('<key>')
    .option('-n, --limit <n>', 'the newest n revisions')
    .option('--json', 'JSON lines even on a terminal')
    .action(async (bucket: string, key: string, options: OutputOptions & { limit?: string }) => {
      const limit = wholeNumber(options.limit, '--limit', 1);
      await runKv(options, KV_ACTIONS.history, async (bus) => {
        const { entries } = await bus.request<KvHistory>(KV_ACTIONS.history, { bucket, key, ...(limit !== undefined && { limit }) });
        if (terminal(options)) process.stdout.write(`${formatHistory(entries)}\n`);
        else for (const entry of entries) writeLine(entry);
      });
    });
}

function watchCommand(): Command {
  return usageExits(addConnectionOptions(new Command('watch')))
    .description('print the changes of a bucket as they happen, across lost connections: first the current values (or, with --since, every kept change after that revision), then live (Ctrl-C stops)')
    .argument('<bucket>')
    .option('-p, --prefix <prefix>', 'only the keys that start with it')
    .option('--since <revision>', 'replay the kept changes after this revision (what a consumer saw last) instead of the current values')
    .option('--json', 'JSON lines even on a terminal')
    .action(async (bucket: string, options: OutputOptions & { prefix?: string; since?: string }) => {
      const since = wholeNumber(options.since, '--since');
      const print = terminal(options) ? (change: KvChange) => process.stdout.write(`${formatChange(change)}\n`) : writeLine;
      await runKv(options, KV_ACTIONS.watch, async (bus, signal) => {
        let caughtUp = false;
        for await (const item of bus.kv(bucket).watch({ ...(options.prefix !== undefined && { prefix: options.prefix }), ...(since !== undefined && { since }), signal })) {
          if (!isUpToDate(item)) print(onWire(item));
          else if (!caughtUp) process.stderr.write(`relais: watching bucket ${bucket}${options.prefix ? ` (keys ${options.prefix}…)` : ''}, up to date at revision ${item.revision}\n`);
          else process.stderr.write(`relais: caught up again at revision ${item.revision}\n`);
          caughtUp ||= isUpToDate(item);
        }
      });
    });
}

function bucketsCommand(): Command {
  return usageExits(addConnectionOptions(new Command('buckets')))
    .description('the buckets, with their keys, last revision and settings (history depth, largest value, time to live)')
    .option('--json', 'JSON lines even on a terminal')
    .action(async (options: OutputOptions) => {
      await runKv(options, KV_ACTIONS.buckets, async (bus) => {
        const { buckets } = await bus.request<KvBuckets>(KV_ACTIONS.buckets, {});
        if (terminal(options)) process.stdout.write(`${formatBuckets(buckets)}\n`);
        else for (const bucket of buckets) writeLine(bucket);
      });
    });
}

export function kvCommand(): Command {
  return new Command('kv')
    .description("the router's key-value store: buckets of keys with revisions, history, watch and compare-and-set (docs/kv.md)")
    .addCommand(getCommand())
    .addCommand(putCommand())
    .addCommand(delCommand())
    .addCommand(lsCommand())
    .addCommand(historyCommand())
    .addCommand(watchCommand())
    .addCommand(bucketsCommand())
    .addHelpText('after', '\nExit codes: 0 done, 1 no such key or another failure, 2 usage, 3 no router answers, 5 --expect-revision found another revision.');
}
