/**
 * The Python client package (clients/python, docs/python.md) against the TypeScript library:
 * request/response (~100-byte JSON echoed) through one `relais start` (embedded broker and
 * router in one process), the requester and the handler each in its own process:
 *
 *   TS → TS (the baseline), Python → TS, TS → Python, Python → Python,
 *   and, when paho 2.x is there (RELAIS_PAHO2_PATH, default /tmp/paho2/usr/lib/python3/dist-packages),
 *   Python → TS and TS → Python on paho 2.x.
 *
 * The TS side is bench/peers/relais.ts, the Python side bench/peers/python-peer.py: the same
 * line protocol, the same loops (sequential, then 100 in flight), the same checks (every answer
 * matched to its request, served = sent). Rounds alternate the order, as in the peers scenario.
 *
 *   npm run bench -- --only python
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ms, rate, ratio, type Table } from '../lib/util.js';
import type { PeerBrokerKind } from '../peers/brokers.js';
import type { Contender } from '../peers/contenders.js';
import { PYTHON } from '../peers/process.js';
import { figures, peersTables, pct } from '../peers/report.js';
import { runPeers, type PeersConfig, type PeersResult } from './peers.js';

export interface PythonConfig {
  peers: PeersConfig;
}

export interface PythonResult {
  config: PythonConfig;
  run: PeersResult;
  failed: boolean;
  /** The interpreter and paho versions the Python rows ran on. */
  versions: { python: string; paho1: string; paho2?: string };
}

const PACKAGE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../clients/python');
const BROKER: PeerBrokerKind = 'relais-start';
const TS_FILE = 'relais.ts';
const PY_FILE = 'python-peer.py';

function paho2Path(): string | undefined {
  const folder = process.env.RELAIS_PAHO2_PATH ?? '/tmp/paho2/usr/lib/python3/dist-packages';
  return fs.existsSync(path.join(folder, 'paho/mqtt/client.py')) ? folder : undefined;
}

/** `paho.mqtt`'s version as the Python side would import it, or why it cannot. */
function probe(pythonPath: string): { version?: string; error?: string } {
  if (!fs.existsSync(PYTHON)) return { error: `${PYTHON} is not installed (apt-get install python3 python3-paho-mqtt)` };
  const out = spawnSync(PYTHON, ['-c', 'import relais, paho.mqtt; relais.connect; print(paho.mqtt.__version__)'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, PYTHONPATH: pythonPath } });
  if (out.status === 0) return { version: out.stdout.trim() };
  return { error: `${PYTHON} cannot import relais and paho.mqtt with PYTHONPATH=${pythonPath}: ${(out.stderr ?? '').trim().split('\n').pop()}` };
}

export function pythonContenders(): Contender[] {
  const paho2 = paho2Path();
  const sides = [
    { id: 'ts-ts', label: 'TS → TS (baseline)', requester: TS_FILE, handler: TS_FILE },
    { id: 'py-ts', label: 'Python → TS', requester: PY_FILE, handler: TS_FILE },
    { id: 'ts-py', label: 'TS → Python', requester: TS_FILE, handler: PY_FILE },
    { id: 'py-py', label: 'Python → Python', requester: PY_FILE, handler: PY_FILE },
    ...(paho2
      ? [
          { id: 'py2-ts', label: 'Python (paho 2) → TS', requester: PY_FILE, handler: TS_FILE, paho2 },
          { id: 'ts-py2', label: 'TS → Python (paho 2)', requester: TS_FILE, handler: PY_FILE, paho2 },
        ]
      : []),
  ];
  return sides.map((side) => {
    const pythonPath = 'paho2' in side ? `${PACKAGE}:${side.paho2}` : PACKAGE;
    const usesPython = side.requester === PY_FILE || side.handler === PY_FILE;
    return {
      id: `${side.id}@${BROKER}`,
      family: 'relais',
      label: side.label,
      broker: BROKER,
      file: side.requester,
      requesterFile: side.requester,
      handlerFile: side.handler,
      // One relais start for all: each pair its own action, so that a requester reaches its own handler only.
      args: ['--action', `bench/echo-${side.id}`],
      guarantee: 'acknowledged end to end, QoS 0',
      packages: ['mqtt', 'better-sqlite3'],
      ...(usesPython && { env: { PYTHONPATH: pythonPath }, unavailable: () => probe(pythonPath).error }),
    } satisfies Contender;
  });
}

export async function runPython(config: PythonConfig): Promise<PythonResult> {
  const paho2 = paho2Path();
  const version = spawnSync(PYTHON, ['--version'], { encoding: 'utf8' }).stdout?.trim() || 'absent';
  const versions = { python: `${PYTHON} (${version})`, paho1: probe(PACKAGE).version ?? 'absent', ...(paho2 && { paho2: probe(`${PACKAGE}:${paho2}`).version ?? 'absent' }) };
  const run = await runPeers({ ...config.peers, contenders: pythonContenders() });
  const failed = run.results.some((result) => result.failed || result.skipped) || run.leftovers.length > 0;
  return { config, run, failed, versions };
}

export function pythonTables(result: PythonResult): Table[] {
  const all = result.run.results.filter((r) => !r.skipped && !r.failed && r.rounds > 0).map(figures);
  const byId = (prefix: string) => all.find((f) => f.result.contender.id.startsWith(`${prefix}@`));
  const baseline = byId('ts-ts');
  const rows: string[][] = [];
  if (baseline) {
    for (const f of all) {
      if (f === baseline) continue;
      rows.push([
        f.result.contender.label,
        `${ms(f.seq.p50)} / ${ms(f.seq.p99)}`,
        ratio(f.seq.p50 / baseline.seq.p50),
        rate(f.tput),
        ratio(f.tput / baseline.tput),
        ratio(f.loaded.p99 / baseline.loaded.p99),
        `${pct(f.cpuPercent.requester)} / ${pct(f.cpuPercent.handler)} / ${pct(f.cpuPercent.broker ?? NaN)}`,
        ratio(f.cpuPerRequest / baseline.cpuPerRequest),
      ]);
    }
  }
  const main = peersTables(result.run)[0]!;
  return [
    { ...main, title: 'Python client: request/response through relais start, requester, handler and relais start each in its own process' },
    {
      title: `Python client against the TypeScript library alone (this row / TS → TS: ${baseline ? `${ms(baseline.seq.p50)} ms sequential p50, ${rate(baseline.tput)} req/s` : 'baseline missing'})`,
      columns: ['pair (requester → handler)', 'sequential p50 / p99 (ms)', 'p50 ratio', 'req/s, 100 in flight', 'req/s ratio', 'p99 under load ratio', 'CPU % requester / handler / relais start', 'CPU per request ratio'],
      rows,
      notes: [
        'ratios above 1.00x for latency and CPU, below 1.00x for req/s: the pair with Python is slower or costlier than TS → TS on the same relais start',
        `Python ${result.versions.python}; paho-mqtt ${result.versions.paho1} (Debian)${result.versions.paho2 ? `, ${result.versions.paho2} for the paho 2 rows` : ''}`,
        'a Python process\'s CPU is time.process_time(): all its threads, paho\'s network thread included; relais start\'s includes its router recording every request',
      ],
    },
  ];
}
