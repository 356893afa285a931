/**
 * The parent side of a peer process (protocol.ts): starts `node --import tsx <script> …`
 * (or, for a `.py` script, Debian's `/usr/bin/python3 <script> …`, RELAIS_PYTHON to change it),
 * waits (bounded) for its ready line, sends commands and waits (bounded) for each reply,
 * and ends it — stdin closed first, SIGKILL if it does not exit in time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { log, withDeadline } from '../lib/util.js';
import { encodeLine, parseReply, type Command, type ReadyReply, type Reply, type ResultReply } from './protocol.js';
import { track } from './reaper.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** Debian's interpreter, whose dist-packages hold python3-paho-mqtt (a pyenv python3 first on the PATH has none). */
export const PYTHON = process.env.RELAIS_PYTHON ?? '/usr/bin/python3';

export class PeerProcess {
  private readonly replies: Reply[] = [];
  private waiter: (() => void) | undefined;
  private readonly exited: Promise<number | null>;
  private exitCode: number | null | undefined;

  private constructor(
    readonly label: string,
    private readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? -1 : null);
        this.wake();
        resolve(this.exitCode);
      }),
    );
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const reply = parseReply(line);
      if (!reply) {
        process.stderr.write(`[${label}] ${line}\n`);
        return;
      }
      this.replies.push(reply);
      this.wake();
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) if (line.trim()) process.stderr.write(`[${label}] ${line}\n`);
    });
    child.stdin!.on('error', () => {}); // a child that died: its exit is reported instead
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Starts bench/peers/<file> with `args` (and `env` added to this process's); resolves with the process once it printed its ready line. */
  static async start(label: string, file: string, args: string[], readyMs = 30_000, env?: Record<string, string>): Promise<{ peer: PeerProcess; ready: ReadyReply }> {
    const script = path.join(here, file);
    const [command, commandArgs] = file.endsWith('.py') ? [PYTHON, [script, ...args]] : [process.execPath, ['--import', 'tsx', script, ...args]];
    const child = track(spawn(command, commandArgs, { stdio: ['pipe', 'pipe', 'pipe'], ...(env && { env: { ...process.env, ...env } }) }));
    const peer = new PeerProcess(label, child);
    try {
      const ready = await peer.next(readyMs, 'ready');
      if (ready.peer !== 'ready') throw new Error(`${label} did not start: ${ready.peer === 'error' ? ready.message : JSON.stringify(ready)}`);
      return { peer, ready };
    } catch (error) {
      await peer.close(1000);
      throw error;
    }
  }

  /** Sends one command and waits for its reply (an ErrorReply is returned, not thrown). */
  async command(command: Command, timeoutMs: number): Promise<Reply> {
    if (this.exitCode !== undefined) throw new Error(`${this.label} has exited (${this.exitCode})`);
    this.child.stdin!.write(encodeLine(command));
    return this.next(timeoutMs, command.cmd);
  }

  /** Closes stdin (the child closes its connections and exits); SIGKILL after `timeoutMs`. */
  async close(timeoutMs = 5000): Promise<ResultReply | undefined> {
    if (this.exitCode === undefined) {
      this.child.stdin!.end();
      try {
        await withDeadline(this.exited, timeoutMs, `${this.label} exit`);
      } catch {
        log(`${this.label} did not exit within ${timeoutMs} ms: killed`);
        this.child.kill('SIGKILL');
        await withDeadline(this.exited, 5000, `${this.label} exit after SIGKILL`).catch(() => {});
      }
    }
    return this.replies.find((reply): reply is ResultReply => reply.peer === 'result');
  }

  private async next(timeoutMs: number, what: string): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const reply = this.replies.shift();
      if (reply) return reply;
      if (this.exitCode !== undefined) throw new Error(`${this.label} exited (${this.exitCode}) while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.label}: no reply to ${what} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
  }

  private wake(): void {
    this.waiter?.();
  }
}
