/**
 * Agent (docs/agent.md "File transfer"): file transfer throughput on loopback, in one run, against `cp` of the same
 * file (the floor) and the same file as raw MQTT.js chunks on the same broker (the layer
 * below); and command output latency, from a line printed on the agent to that line shown by
 * `relais exec`. Broker, agent and each client in its own process.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBenchBroker } from '../lib/brokers.js';
import { log, percentile, type Table } from '../lib/util.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHILD = path.join(here, '../peers/transfer-child.ts');
const RELAIS = path.join(here, '../../bin/relais.js');

export interface TransferConfig {
  fileBytes: number;
  lines: number;
}

export interface TransferResult {
  fileBytes: number;
  cpMBps: number;
  rawMBps: number;
  relaisMBps: number;
  latency: { p50: number; p99: number; max: number; lines: number };
}

function waitLine(child: ChildProcess, pattern: RegExp, timeout = 120_000): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`no ${pattern} within ${timeout} ms: ${seen}`)), timeout);
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      const match = pattern.exec(seen);
      if (match) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(match);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`exited ${code} before ${pattern}: ${seen}`)));
  });
}

function node(args: string[]): ChildProcess {
  return spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RELAIS_LOG_LEVEL: 'error' } });
}

export async function runTransfer(config: TransferConfig): Promise<TransferResult> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-bench-transfer-'));
  const disk = path.join(work, 'disk');
  fs.mkdirSync(disk);
  const source = path.join(work, 'source.bin');
  const block = createHash('sha512').update('relais').digest();
  const fd = fs.openSync(source, 'w');
  const big = Buffer.alloc(1024 * 1024);
  for (let at = 0; at < big.length; at += block.length) block.copy(big, at);
  for (let at = 0; at < config.fileBytes; at += big.length) {
    big.writeUInt32BE(at, 0);
    fs.writeSync(fd, big, 0, Math.min(big.length, config.fileBytes - at));
  }
  fs.closeSync(fd);
  const broker = await startBenchBroker('aedes');
  const agentConfig = path.join(work, 'agent.json');
  fs.writeFileSync(agentConfig, JSON.stringify({ services: { disks: { disks: { data: { path: disk } } }, transfer: {}, command: { ruleSet: 'bench', rules: [{ name: 'sh', program: '/bin/sh', args: ['-c', { pattern: '.*' }] }] } } }));
  const agent = spawn(process.execPath, [RELAIS, 'agent', '--id', 'bench-agent', '--config', agentConfig, '--broker', broker.url], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RELAIS_LOG_LEVEL: 'error' } });
  const MBps = (ms: number) => config.fileBytes / 1e6 / (ms / 1000);
  try {
    await waitLine(agent, /serving/);
    // cp: the floor (the page cache holds the source; the copy is synced as the transfers' files are).
    let started = performance.now();
    spawnSync('cp', [source, path.join(work, 'cp.bin')]);
    spawnSync('sync', [path.join(work, 'cp.bin')]);
    const cpMBps = MBps(performance.now() - started);
    log(`transfer: cp ${cpMBps.toFixed(0)} MB/s`);
    // Raw MQTT.js: the same bytes in 256 KiB chunks, QoS 1, 8 in flight, receiver writing them.
    const receiver = node(['--import', 'tsx', CHILD, 'raw-recv', broker.url, 'bench/raw-file', String(config.fileBytes), path.join(work, 'raw.bin')]);
    await waitLine(receiver, /READY/);
    const rawDone = waitLine(receiver, /DONE ([\d.]+)/);
    const rawSender = node(['--import', 'tsx', CHILD, 'raw-send', broker.url, 'bench/raw-file', source, String(256 * 1024)]);
    const rawMBps = MBps(Number((await rawDone)[1]));
    await waitLine(rawSender, /SENT/).catch(() => undefined);
    log(`transfer: raw MQTT.js ${rawMBps.toFixed(0)} MB/s`);
    // relais send, through the agent.
    const sender = node(['--import', 'tsx', CHILD, 'send', broker.url, 'bench-agent', source, 'data', 'sent.bin']);
    const relaisMBps = MBps(Number((await waitLine(sender, /DONE ([\d.]+)/))[1]));
    log(`transfer: relais send ${relaisMBps.toFixed(0)} MB/s`);
    // Command output latency: each line carries the agent host's wall clock in ns when printed.
    const script = `i=0; while [ $i -lt ${config.lines} ]; do date +%s%N; i=$((i+1)); sleep 0.005; done`;
    const exec = spawn(process.execPath, [RELAIS, 'exec', 'bench-agent', '--broker', broker.url, '--', '/bin/sh', '-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const latencies: number[] = [];
    let buffered = '';
    exec.stdout!.on('data', (chunk: Buffer) => {
      const now = performance.timeOrigin + performance.now();
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) if (/^\d+$/.test(line)) latencies.push(now - Number(line) / 1e6);
    });
    await new Promise((resolve) => exec.once('exit', resolve));
    latencies.sort((a, b) => a - b);
    return { fileBytes: config.fileBytes, cpMBps, rawMBps, relaisMBps, latency: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) ?? NaN, lines: latencies.length } };
  } finally {
    agent.kill('SIGINT');
    await broker.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

export function transferTables(result: TransferResult): Table[] {
  return [
    {
      title: `File transfer on loopback, ${(result.fileBytes / 1e6).toFixed(0)} MB file`,
      columns: ['path', 'MB/s', 'vs cp'],
      rows: [
        ['cp (+ sync)', result.cpMBps.toFixed(0), '1.00x'],
        ['raw MQTT.js, 256 KiB chunks, QoS 1, 8 in flight', result.rawMBps.toFixed(0), (result.rawMBps / result.cpMBps).toFixed(2) + 'x'],
        ['relais send (binary chunks, protocol §3.5; window 8, SHA-256, fsync)', result.relaisMBps.toFixed(0), (result.relaisMBps / result.cpMBps).toFixed(2) + 'x'],
      ],
    },
    {
      title: `Command output latency (line printed on the agent → shown by relais exec), ${result.latency.lines} lines`,
      columns: ['p50 ms', 'p99 ms', 'max ms'],
      rows: [[result.latency.p50.toFixed(2), result.latency.p99.toFixed(2), result.latency.max.toFixed(2)]],
    },
  ];
}
