/**
 * How long `relais` takes as a whole process, as a user's shell loop sees it: wall time from
 * spawn to exit and the process's peak RSS (/usr/bin/time -f %M), N runs of each command,
 * interleaved (run 1 of every command, then run 2…) so a load change on a shared machine falls
 * on all of them alike. `node -e 0` (Node's own floor) and `mosquitto_pub` (what MQTT users
 * compare with) are the references. `pub` and `call` go to a real Mosquitto; `call` is answered
 * by an echo handler in this process.
 *
 *   node --import tsx bench/cli-startup.ts [--runs 20] [--only help,pub,call] [--bin bin/relais.js]
 *
 * It runs the built CLI (`npx tsc -p tsconfig.build.json` first). Markdown to stdout, progress
 * to stderr; the table notes the load average before and after (bench/RESULTS.md).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { connect } from '../src/client/connect.js';
import { findBinary, startMosquitto } from '../test/testkit/brokers.js';
import { RELAIS_BIN } from '../test/testkit/cli.js';
import { log, renderTable } from './lib/util.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '20' },
    only: { type: 'string' },
    bin: { type: 'string', default: RELAIS_BIN },
  },
});
const runs = Number(values.runs);
const bin = path.resolve(values.bin!);
const time = findBinary('time') ?? '/usr/bin/time';
const mosquittoPub = findBinary('mosquitto_pub');

interface Case {
  id: string;
  label: string;
  argv: string[];
  /** The exit code the run must end with: a run that failed is not a start-up figure. */
  code: number;
}

interface Sample {
  ms: number;
  /** User + system CPU time: less sensitive than wall time to other processes on a loaded machine. */
  cpuMs: number;
  rssMb: number;
}

/** One whole-process run under /usr/bin/time: wall time seen from here, CPU time and peak RSS from time(1). */
function runOnce(argv: string[], expected: number, env: NodeJS.ProcessEnv): Promise<Sample> {
  const rssFile = path.join(os.tmpdir(), `relais-cli-startup-${process.pid}.time`);
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(time, ['-f', '%U %S %M', '-o', rssFile, ...argv], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      // time(1) writes "Command exited with non-zero status N" before the figure when it is not 0.
      const [user, system, rssKb] = fs.readFileSync(rssFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
      if (code !== expected) reject(new Error(`${argv.join(' ')} exited ${code}, expected ${expected}\n${stderr}`));
      else resolve({ ms, cpuMs: (user! + system!) * 1000, rssMb: rssKb! / 1024 });
    });
  });
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function range(values: readonly number[], digits = 0): string {
  return `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}`;
}

function loadAverage(): string {
  return os
    .loadavg()
    .map((value) => value.toFixed(2))
    .join(' ');
}

const broker = await startMosquitto();
const handler = await connect({ id: 'bench-echo', broker: broker.url });
await handler.handle('bench/echo', (payload) => payload);
const relais = (args: string[]) => [process.execPath, bin, ...args];
const cases: Case[] = [
  { id: 'node', label: '`node -e 0`', argv: [process.execPath, '-e', '0'], code: 0 },
  ...(mosquittoPub ? [{ id: 'mosquitto_pub', label: '`mosquitto_pub -t bench/t -m {}`', argv: [mosquittoPub, '-h', '127.0.0.1', '-p', new URL(broker.url).port, '-t', 'bench/t', '-m', '{}'], code: 0 }] : []),
  { id: 'help', label: '`relais --help`', argv: relais(['--help']), code: 0 },
  { id: 'pub-help', label: '`relais pub --help`', argv: relais(['pub', '--help']), code: 0 },
  { id: 'call-help', label: '`relais call --help`', argv: relais(['call', '--help']), code: 0 },
  { id: 'pub', label: '`relais pub bench/t {}`', argv: relais(['pub', 'bench/t', '{}']), code: 0 },
  { id: 'call', label: '`relais call bench/echo {}`', argv: relais(['call', 'bench/echo', '{}']), code: 0 },
  { id: 'start-help', label: '`relais start --help` (loads the broker, SQLite, the web server)', argv: relais(['start', '--help']), code: 0 },
];
const only = values.only?.split(',');
const chosen = cases.filter((entry) => !only || entry.id === 'node' || entry.id === 'mosquitto_pub' || only.includes(entry.id));
const env = { ...process.env, RELAIS_BROKER: broker.url, RELAIS_LOG_LEVEL: 'warn' };

/** Which CLI bin/relais.js runs: the bundle when it is newer than the compiled CLI (bin/relais.js). */
function whichBuild(): string {
  const modified = (file: string) => fs.statSync(path.resolve(path.dirname(bin), file), { throwIfNoEntry: false })?.mtimeMs ?? -1;
  return modified('../dist/cli-bundle/main.js') >= modified('../dist/cli/main.js') ? 'bundled (dist/cli-bundle)' : 'compiled (dist/cli; no bundle newer than it)';
}

const buildBefore = whichBuild();
const loadBefore = loadAverage();
log(`${runs} runs of ${chosen.map((entry) => entry.id).join(', ')}; load ${loadBefore}`);
const samples = new Map<string, Sample[]>(chosen.map((entry) => [entry.id, []]));
try {
  // One warm-up round: the first run pays for cold disk caches, which a shell loop does not.
  for (const entry of chosen) await runOnce(entry.argv, entry.code, env);
  for (let run = 0; run < runs; run++) {
    for (const entry of chosen) samples.get(entry.id)!.push(await runOnce(entry.argv, entry.code, env));
  }
} finally {
  await handler.close();
  await broker.close();
}
const loadAfter = loadAverage();
const buildAfter = whichBuild();

process.stdout.write(
  renderTable({
    title: `CLI start-up, whole process (${runs} runs each, interleaved, after one warm-up round)`,
    columns: ['command', 'median ms', 'min–max ms', 'median CPU ms', 'median peak RSS MB', 'min–max RSS MB'],
    rows: chosen.map((entry) => {
      const taken = samples.get(entry.id)!;
      const ms = taken.map((sample) => sample.ms);
      const rss = taken.map((sample) => sample.rssMb);
      return [entry.label, median(ms).toFixed(0), range(ms), median(taken.map((sample) => sample.cpuMs)).toFixed(0), median(rss).toFixed(1), range(rss, 1)];
    }),
    notes: [
      `Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}; load average (1, 5, 15 min) ${loadBefore} before, ${loadAfter} after`,
      `relais ran ${buildBefore}${buildAfter === buildBefore ? '' : `, then ${buildAfter} (rebuilt during the run)`}`,
      `command: node --import tsx bench/cli-startup.ts --runs ${runs}${values.only ? ` --only ${values.only}` : ''}${values.bin !== RELAIS_BIN ? ` --bin ${values.bin}` : ''}`,
      'wall time from spawn to exit, including /usr/bin/time (about 1 ms); CPU is user + system as time(1) reports it (10 ms steps); `pub` and `call` include connecting to Mosquitto on 127.0.0.1',
    ],
  }),
);
