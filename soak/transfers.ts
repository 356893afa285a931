/**
 * File transfers during the soak, with the real CLI: `relais send` of a file drawn from the seed
 * to the agent's disk, then `relais fetch` of it back, one after the other for as long as the
 * workload runs. Each ends either with exit 0 and bytes identical at the far end (the agent's
 * disk is a folder of this machine, the fetched copy a local file), or with a failure the CLI
 * reported (its exit code and message); one that does not end within its bound is killed and
 * counted as hung.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { RELAIS_BIN } from './paths.js';
import type { TransferRecord } from './records.js';
import { Journal } from './journal.js';
import { transferFile } from './workload.js';

export interface TransferSettings {
  seed: number;
  agent: string;
  /** The agent's disk id and the folder it serves. */
  disk: string;
  diskPath: string;
  /** Where the files sent and fetched are kept locally. */
  workDir: string;
  env: NodeJS.ProcessEnv;
  journal: string;
  /** Longest a transfer may take before it counts as hung: the CLI waits up to 5 minutes for an agent that went away (docs/agent.md). */
  boundMs: number;
}

export class TransferLoop {
  private stopping = false;
  private running: Promise<void> | undefined;
  /** The transfer running now; `moving` once it has reported progress (bytes are travelling, not only the CLI starting). */
  private current: { direction: 'send' | 'fetch'; agentKilled: boolean; moving: boolean } | undefined;
  private readonly journal: Journal;
  private readonly waiters = new Set<() => void>();
  readonly records: TransferRecord[] = [];

  constructor(private readonly settings: TransferSettings) {
    this.journal = new Journal(settings.journal);
    fs.mkdirSync(settings.workDir, { recursive: true });
  }

  start(): void {
    this.running = this.loop();
  }

  /** Resolves once a transfer is moving bytes (at once if one is), or after `timeoutMs`; true when one is. */
  async inFlight(timeoutMs: number): Promise<boolean> {
    if (this.current?.moving) return true;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(done);
      const waiters = this.waiters;
      function done() {
        clearTimeout(timer);
        waiters.delete(done);
        resolve();
      }
    });
    return this.current?.moving === true;
  }

  /** The agent is being killed: the transfer running now (if any) is marked. */
  agentKilled(): void {
    if (this.current) this.current.agentKilled = true;
  }

  /** No new transfer; resolves once the one running has ended. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
    this.journal.close();
  }

  private async loop(): Promise<void> {
    for (let n = 0; !this.stopping; n += 1) {
      const name = `file-${n}.bin`;
      const source = path.join(this.settings.workDir, name);
      const contents = transferFile(this.settings.seed, n);
      fs.writeFileSync(source, contents);
      const sent = await this.run('send', [this.settings.agent, source, `${this.settings.disk}:soak/${name}`], name, contents.length, () => sameBytes(contents, path.join(this.settings.diskPath, 'soak', name)));
      if (sent.exitCode !== 0 || this.stopping) {
        await new Promise((resolve) => setTimeout(resolve, 2000)); // as a user would before trying again
        continue;
      }
      const back = path.join(this.settings.workDir, `${name}.back`);
      await this.run('fetch', [this.settings.agent, `${this.settings.disk}:soak/${name}`, back], name, contents.length, () => sameBytes(contents, back));
    }
  }

  private async run(direction: 'send' | 'fetch', args: string[], file: string, size: number, identical: () => boolean): Promise<TransferRecord> {
    const current = { direction, agentKilled: false, moving: false };
    this.current = current;
    const startedAt = Date.now();
    const child = spawn(process.execPath, [RELAIS_BIN, direction, ...args], { env: this.settings.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stdout.resume();
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
      // Off a terminal the CLI prints a line per 10 % ("relais: send 10% …"): from the first one on, bytes are travelling.
      if (!current.moving && PROGRESS_LINE.test(chunk.toString())) {
        current.moving = true;
        for (const wake of [...this.waiters]) wake();
      }
    });
    let hung = false;
    const bound = setTimeout(() => {
      hung = true;
      child.kill('SIGKILL');
    }, this.settings.boundMs);
    const [exitCode, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('close', (code, sig) => resolve([code, sig])));
    clearTimeout(bound);
    const record: TransferRecord = { direction, file, size, startedAt, endedAt: Date.now(), exitCode, signal, hung, agentKilled: current.agentKilled };
    if (exitCode === 0) record.identical = identical();
    else {
      // The CLI's own verdict ("relais: send failed: …") first, then its last lines.
      const lines = stderr.split('\n').filter(Boolean);
      record.stderrTail = [...lines.filter((line) => / failed: /.test(line)), ...lines.slice(-2)].join(' | ').slice(0, 1500);
    }
    this.current = undefined;
    this.records.push(record);
    this.journal.write(record);
    return record;
  }
}

const PROGRESS_LINE = /relais: (send|fetch) [1-9]0% /;

function sameBytes(expected: Buffer, file: string): boolean {
  try {
    return expected.equals(fs.readFileSync(file));
  } catch {
    return false;
  }
}
