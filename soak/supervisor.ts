/**
 * The soak's long-lived processes: started, killed (SIGKILL), frozen (SIGSTOP) and thawed
 * (SIGCONT), restarted the same way each time, with every exit recorded as meant (the soak
 * killed or stopped it) or not (a crash). Output goes to one log file per process and its last
 * lines are kept for the report.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';

export interface ProcessSpec {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** Printed (stdout or stderr) once the process serves. */
  ready: RegExp;
  /** How long a start may take before it counts as failed. Default 120 s (a busy machine). */
  readyTimeoutMs?: number;
  logFile: string;
}

export interface ExitRecord {
  process: string;
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
  /** The soak ended it (a kill -9 of the schedule, the final stop); false is a crash. */
  meant: boolean;
  /** It ended while starting, before it said it was ready (the soak then starts it again, as a service manager would). */
  beforeReady?: boolean;
  /** Its last lines of output, when it was not meant. */
  tail?: string[];
}

const TAIL_LINES = 40;

class ExitedWhileStarting extends Error {}

export class ManagedProcess {
  child: ChildProcess | undefined;
  /** Starts so far (1 after the first). */
  starts = 0;
  frozen = false;
  readonly exits: ExitRecord[] = [];
  private readonly lines: string[] = [];
  private readonly listeners = new Set<(line: string) => void>();
  private readonly log: fs.WriteStream;
  private meantExit = false;
  /** It was asked to end (`stop` on its stdin): exiting 0 then is what it should do. */
  private endAsked = false;

  constructor(readonly spec: ProcessSpec) {
    this.log = fs.createWriteStream(spec.logFile, { flags: 'a' });
  }

  get name(): string {
    return this.spec.name;
  }

  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Calls `listener` with each line the process prints from now on (every incarnation). */
  onLine(listener: (line: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves with the first line matching `pattern` printed from now on; rejects after `timeoutMs`. */
  nextLine(pattern: RegExp, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        stop();
        reject(new Error(`${this.name}: no line matching ${pattern} within ${timeoutMs} ms`));
      }, timeoutMs);
      const stop = this.onLine((line) => {
        if (!pattern.test(line)) return;
        clearTimeout(timer);
        stop();
        resolve(line);
      });
    });
  }

  /**
   * Starts it and resolves once it is ready. One that exits while starting (a client that finds
   * the broker down exits, as `relais agent` does) is started again after a pause, as systemd's
   * Restart=on-failure would, until `readyTimeoutMs` has passed.
   */
  async start(): Promise<void> {
    const giveUp = Date.now() + (this.spec.readyTimeoutMs ?? 120_000);
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.startOnce(giveUp - Date.now());
      } catch (error) {
        if (!(error instanceof ExitedWhileStarting) || Date.now() + 1000 * attempt > giveUp) throw error;
        this.log.write(`--- ${new Date().toISOString()} start attempt ${attempt} failed; again in ${attempt} s\n`);
        await new Promise((resolve) => setTimeout(resolve, 1000 * Math.min(attempt, 5)));
      }
    }
  }

  private async startOnce(timeout: number): Promise<void> {
    if (this.running) throw new Error(`${this.name} is running already`);
    this.meantExit = false;
    this.endAsked = false;
    this.frozen = false;
    const child = spawn(this.spec.command, this.spec.args, { env: this.spec.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    this.starts += 1;
    const incarnation = this.starts;
    this.log.write(`--- ${new Date().toISOString()} start #${incarnation} pid ${child.pid}: ${this.spec.args.join(' ')}\n`);
    child.stdin!.on('error', () => {}); // a process killed while we write to it
    for (const stream of [child.stdout!, child.stderr!]) {
      let partial = '';
      stream.on('data', (chunk: Buffer) => {
        this.log.write(chunk);
        const parts = (partial + chunk.toString()).split('\n');
        partial = parts.pop()!;
        for (const line of parts) this.line(line);
      });
    }
    let ready = false;
    child.once('exit', (code, signal) => {
      const record: ExitRecord = { process: this.name, pid: child.pid ?? -1, code, signal, at: Date.now(), meant: this.meantExit || (this.endAsked && code === 0), ...(!ready && { beforeReady: true }) };
      if (!record.meant) record.tail = this.lines.slice(-TAIL_LINES);
      this.exits.push(record);
      this.log.write(`--- ${new Date().toISOString()} exit of #${incarnation}: code ${code} signal ${signal}${record.meant ? '' : ' (NOT MEANT)'}\n`);
    });
    const readyLine = this.nextLine(this.spec.ready, Math.max(timeout, 1000));
    const exited = once(child, 'exit').then(([code, signal]) => {
      throw new ExitedWhileStarting(`${this.name} exited (code ${code}, signal ${signal}) before it was ready:\n${this.lines.slice(-15).join('\n')}`);
    });
    readyLine.catch(() => {});
    exited.catch(() => {});
    await Promise.race([readyLine, exited]);
    ready = true;
  }

  /** kill -9, as a crash or the OOM killer would; resolves once it is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    this.meantExit = true;
    const gone = once(child, 'exit');
    child.kill('SIGKILL');
    await gone;
    this.frozen = false;
  }

  freeze(): void {
    if (!this.running) return;
    this.child!.kill('SIGSTOP');
    this.frozen = true;
  }

  thaw(): void {
    if (!this.running) return;
    this.child!.kill('SIGCONT');
    this.frozen = false;
  }

  /**
   * Asks it to end by itself (`stop` on its stdin: an actor finishes what is pending) and
   * resolves once it has; SIGTERM after `graceMs`. Exiting 0 then is not a crash.
   */
  async end(graceMs: number): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    this.endAsked = true;
    const gone = once(child, 'exit');
    child.stdin!.write('stop\n');
    const timer = setTimeout(() => void this.stop(), graceMs);
    await gone;
    clearTimeout(timer);
  }

  /** The end of the run: SIGTERM (thawed first), then SIGKILL after `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    this.meantExit = true;
    if (this.frozen) this.thaw();
    const gone = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await gone;
    clearTimeout(timer);
  }

  /** Exits nobody asked for. */
  crashes(): ExitRecord[] {
    return this.exits.filter((exit) => !exit.meant);
  }

  /** The last lines it printed. */
  tail(count = TAIL_LINES): string[] {
    return this.lines.slice(-count);
  }

  async closeLog(): Promise<void> {
    await new Promise<void>((resolve) => this.log.end(resolve));
  }

  private line(text: string): void {
    this.lines.push(text);
    if (this.lines.length > 4 * TAIL_LINES) this.lines.splice(0, this.lines.length - 2 * TAIL_LINES);
    for (const listener of this.listeners) listener(text);
  }
}
