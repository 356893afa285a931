/**
 * Where the router's microseconds go (protocol §11.1): `bin/relais.js start` under `node
 * --cpu-prof` (the main thread, the broker, and the router's worker thread each write a
 * profile), a flood of echo requests (a requester and a handler of the compiled library, both in
 * this process, 100 in flight, or paced at --rate) for a few seconds, then SIGTERM; then each profile's self time
 * per request, grouped by where the function lives.
 *
 *   npm run build && node --import tsx bench/router-profile.ts [--seconds 8] [--no-router] [--no-profile] [--rate REQUESTS_PER_S] [--keep DIR]
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { relais } from './lib/relais.js';

const { values: flags } = parseArgs({ options: { seconds: { type: 'string', default: '8' }, 'no-router': { type: 'boolean', default: false }, 'no-profile': { type: 'boolean', default: false }, rate: { type: 'string' }, keep: { type: 'string' } } });
const seconds = Number(flags.seconds);
const dir = flags.keep ?? fs.mkdtempSync(path.join(os.tmpdir(), 'relais-router-profile-'));
const profiles = path.join(dir, 'profiles');
fs.mkdirSync(profiles, { recursive: true });
const bin = new URL('../bin/relais.js', import.meta.url).pathname;

const child = spawn(process.execPath, [...(flags['no-profile'] ? [] : ['--cpu-prof', '--cpu-prof-dir', profiles]), bin, 'start', '--web-port', '0', '--port', '0', '--data-dir', path.join(dir, 'data'), ...(flags['no-router'] ? ['--no-router'] : [])], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, RELAIS_LOG_LEVEL: 'warn' },
});
const url = await new Promise<string>((resolve, reject) => {
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const match = /clients connect with --broker (mqtt:\/\/\S+)/.exec(line);
    if (match) resolve(match[1]!);
  });
  child.once('exit', (code) => reject(new Error(`relais start exited (${code})`)));
});

const logger = pino({ level: 'warn' });
const handler = await relais.connect({ id: 'profile-handler', broker: url, logger });
await handler.handle('bench/echo', (payload) => payload);
const requester = await relais.connect({ id: 'profile-requester', broker: url, logger });
await requester.waitForHandler('bench/echo', { timeout: 15_000 });

let answered = 0;
let stop = false;
const text = 'x'.repeat(80);
/** With --rate, each lane waits for its turn: `rate` requests a second in all, whatever the machine's load, so that runs compare CPU per request at the same batch sizes. */
const rate = flags.rate === undefined ? undefined : Number(flags.rate);
const lanes = 100;
async function lane(n: number): Promise<void> {
  let due = performance.now();
  while (!stop) {
    if (rate !== undefined) {
      due += (lanes / rate) * 1000;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
    await requester.request('bench/echo', { n: (n += lanes), text });
    answered++;
  }
}
/** User and system CPU of relais start (all its threads) so far, in µs, from /proc/<pid>/stat. */
function cpuOf(pid: number): { user: number; system: number } {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const tick = 1e6 / 100; // USER_HZ
  return { user: Number(fields[11]) * tick, system: Number(fields[12]) * tick };
}
const cpuBefore = cpuOf(child.pid!);
// The profile covers start-up and shutdown too (a small part); the CPU figures only the flood.
const started = performance.now();
await Promise.all(Array.from({ length: lanes }, (_, i) => lane(i)).concat([new Promise<void>((resolve) => setTimeout(() => ((stop = true), resolve()), seconds * 1000))]));
const elapsed = (performance.now() - started) / 1000;
const cpuAfter = cpuOf(child.pid!);
await requester.close();
await handler.close();
child.kill('SIGTERM');
await new Promise((resolve) => child.once('exit', resolve));
process.stdout.write(`${answered} requests in ${elapsed.toFixed(1)} s: ${(answered / elapsed).toFixed(0)} req/s; relais start CPU per request ${((cpuAfter.user - cpuBefore.user) / answered).toFixed(1)} µs user + ${((cpuAfter.system - cpuBefore.system) / answered).toFixed(1)} µs system; profiles in ${profiles}\n`);

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time per function (µs), from a .cpuprofile's samples. */
function selfTimes(profile: Profile): Map<ProfileNode, number> {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<ProfileNode, number>();
  profile.samples.forEach((id, i) => {
    const node = byId.get(id)!;
    self.set(node, (self.get(node) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  return self;
}

function groupOf(frame: ProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  if (functionName === '(idle)') return '(idle)';
  if (functionName === '(garbage collector)') return 'garbage collection';
  if (functionName === '(program)') return '(program: native, outside JS)';
  if (url.includes('better-sqlite3')) return 'better-sqlite3 (SQLite inside)';
  if (/\/node_modules\/(mqtt|mqtt-packet|bl|readable-stream)\//.test(url)) return 'MQTT.js / mqtt-packet';
  if (url.includes('/node_modules/aedes')) return 'Aedes';
  if (url.includes('/node_modules/')) return `node_modules/${url.split('/node_modules/')[1]!.split('/')[0]}`;
  if (url.includes('/dist/')) return `relais ${url.split('/dist/')[1]}`;
  if (url.startsWith('node:')) return `node: ${url.slice(5).split('/')[0]}`;
  if (functionName === 'parse' || functionName === 'stringify') return `JSON.${functionName}`;
  return `(native) ${functionName || '(anonymous)'}`;
}

for (const file of fs.readdirSync(profiles).filter((name) => name.endsWith('.cpuprofile'))) {
  const profile = JSON.parse(fs.readFileSync(path.join(profiles, file), 'utf8')) as Profile;
  const groups = new Map<string, number>();
  const functions = new Map<string, number>();
  let busy = 0;
  for (const [node, us] of selfTimes(profile)) {
    const group = groupOf(node.callFrame);
    groups.set(group, (groups.get(group) ?? 0) + us);
    const name = `${node.callFrame.functionName || '(anonymous)'} ${node.callFrame.url.split('/').slice(-2).join('/')}`;
    functions.set(name, (functions.get(name) ?? 0) + us);
    if (group !== '(idle)') busy += us;
  }
  const perRequest = (us: number) => (us / answered).toFixed(2);
  process.stdout.write(`\n${file}: busy ${(busy / 1e6).toFixed(2)} s = ${perRequest(busy)} µs per request\n`);
  for (const [group, us] of [...groups].sort((a, b) => b[1] - a[1]).slice(0, 25)) process.stdout.write(`  ${perRequest(us).padStart(7)}  ${group}\n`);
  process.stdout.write('  top functions:\n');
  for (const [name, us] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, 30)) process.stdout.write(`  ${perRequest(us).padStart(7)}  ${name}\n`);
}
if (!flags.keep) fs.rmSync(dir, { recursive: true, force: true });
