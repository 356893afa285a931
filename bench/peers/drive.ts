/**
 * The requester's loops, the same for every contender: it is given one `send(payload)` that
 * resolves with the echoed payload, and times it. Every answer is checked against what was
 * sent (Totals); a phase that stops making progress fails instead of hanging.
 */
import { isEcho, makePayload, type EchoPayload, type PhaseReply, type Totals } from './protocol.js';

export type Send = (payload: EchoPayload) => Promise<unknown>;

/** A phase fails when no answer came for this long (a lost message: the request never ends). */
export const STALL_MS = 5000;

export class Driver {
  readonly totals: Totals = { sent: 0, received: 0, bad: 0 };

  constructor(private readonly send: Send) {}

  /**
   * Untimed round trips (JIT, socket buffers, TCP's quick-ack state): `count` one at a time
   * or `capMs`, whichever first, then `loadMs` with `inFlight` in flight — a first load window
   * is otherwise up to a third slower while V8 optimises the concurrent path.
   */
  async warmup(count: number, capMs: number, inFlight: number, loadMs: number): Promise<PhaseReply> {
    return this.phase('warmup', async () => {
      const end = performance.now() + capMs;
      let done = 0;
      while (done < count && performance.now() < end) {
        await this.one();
        done++;
      }
      if (loadMs > 0) done += (await this.loop(inFlight, loadMs)).samples.length;
      return { samples: [], completed: done, windowMs: 0 };
    });
  }

  /** One request at a time, `count` of them or as many as fit in `capMs` (a stalled contender). */
  async sequential(count: number, capMs: number): Promise<PhaseReply> {
    return this.phase('sequential', async () => {
      const samples: number[] = [];
      const end = performance.now() + capMs;
      while (samples.length < count && performance.now() < end) samples.push(await this.one());
      return { samples, completed: samples.length, windowMs: 0 };
    });
  }

  /**
   * `inFlight` requests at a time for `durationMs`: each worker sends its next request when
   * its last one is answered. Throughput counts the answers inside the window; latencies
   * include the tail (requests still in flight when the window closed).
   */
  async load(inFlight: number, durationMs: number): Promise<PhaseReply> {
    return this.phase('load', () => this.loop(inFlight, durationMs));
  }

  private async loop(inFlight: number, durationMs: number): Promise<{ samples: number[]; completed: number; windowMs: number }> {
    const samples: number[] = [];
    const end = performance.now() + durationMs;
    let inWindow = 0;
    const worker = async () => {
      while (performance.now() < end) {
        const took = await this.one();
        samples.push(took);
        if (performance.now() <= end) inWindow++;
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
    return { samples, completed: inWindow, windowMs: durationMs };
  }

  private async one(): Promise<number> {
    const payload = makePayload(this.totals.sent++);
    const start = performance.now();
    const answer = await this.send(payload);
    const took = performance.now() - start;
    this.totals.received++;
    if (!isEcho(payload, answer)) this.totals.bad++;
    return took;
  }

  private async phase(
    cmd: PhaseReply['cmd'],
    work: () => Promise<Pick<PhaseReply, 'samples' | 'completed' | 'windowMs'>>,
  ): Promise<PhaseReply> {
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    const result = await this.watched(work(), cmd);
    const elapsedMs = performance.now() - wall0;
    const cpu = process.cpuUsage(cpu0);
    return {
      peer: 'done',
      cmd,
      // Rounded to 0.1 µs: the lines stay short and nothing measured here is that fine.
      samples: result.samples.map((value) => Math.round(value * 10_000) / 10_000),
      completed: result.completed,
      windowMs: result.windowMs,
      elapsedMs,
      cpuMs: (cpu.user + cpu.system) / 1000,
      totals: { ...this.totals },
    };
  }

  /** Rejects when `received` has not moved for STALL_MS: a request was lost and would wait forever. */
  private watched<T>(work: Promise<T>, label: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let seen = this.totals.received;
      let quietSince = performance.now();
      const timer = setInterval(() => {
        if (this.totals.received !== seen) {
          seen = this.totals.received;
          quietSince = performance.now();
        } else if (performance.now() - quietSince > STALL_MS) {
          clearInterval(timer);
          const missing = this.totals.sent - this.totals.received;
          reject(new Error(`${label}: no answer for ${STALL_MS} ms, ${missing} request(s) unanswered (lost?)`));
        }
      }, 250);
      work.then(
        (value) => {
          clearInterval(timer);
          resolve(value);
        },
        (error: unknown) => {
          clearInterval(timer);
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });
  }
}
