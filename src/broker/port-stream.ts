/**
 * A byte stream over a worker thread's MessagePort: `relais start` runs its router in a worker
 * thread (its own core) that still reaches the embedded broker without a socket. Each end is a
 * Duplex; bytes cross as copies (a pooled Buffer cannot be transferred).
 */
import { Duplex } from 'node:stream';
import type { MessagePort } from 'node:worker_threads';

type Frame = { data: Uint8Array } | { end: true } | { consumed: number };

/** Bytes sent and not yet taken in by the other thread, past which writes wait: a stalled thread cannot make the other buffer without end. */
const MAX_UNCONSUMED = 8 * 1024 * 1024;

export class PortStream extends Duplex {
  private port: MessagePort | undefined;
  private readonly waiting: Array<() => void> = [];
  /** Bytes written in this turn: one message per turn, not one per MQTT packet (a message costs ~10 µs). */
  private outbox: Buffer[] = [];
  private unconsumed = 0;
  /** A write waiting for the other thread to take in what was sent. */
  private blocked: (() => void) | undefined;

  /** `port` now, or later with `attach()` (writes wait for it). */
  constructor(port?: MessagePort) {
    super();
    if (port) this.attach(port);
  }

  attach(port: MessagePort): void {
    this.port = port;
    port.on('message', (frame: Frame) => {
      if ('consumed' in frame) {
        this.unconsumed -= frame.consumed;
        if (this.unconsumed <= MAX_UNCONSUMED) this.release();
      } else if ('end' in frame) this.push(null);
      else {
        this.push(Buffer.from(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength));
        port.postMessage({ consumed: frame.data.byteLength } satisfies Frame);
      }
    });
    port.on('close', () => this.destroy());
    for (const resume of this.waiting.splice(0)) resume();
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.outbox.length === 0) setImmediate(() => this.whenAttached(this.sendOutbox));
    this.outbox.push(chunk);
    this.unconsumed += chunk.length;
    if (this.unconsumed <= MAX_UNCONSUMED) callback();
    else this.blocked = () => callback();
  }

  private release(): void {
    const blocked = this.blocked;
    this.blocked = undefined;
    blocked?.();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.whenAttached(() => {
      this.sendOutbox();
      this.port!.postMessage({ end: true } satisfies Frame);
      callback();
    });
  }

  private readonly sendOutbox = (): void => {
    if (this.outbox.length === 0) return;
    const bytes = this.outbox.length === 1 ? new Uint8Array(this.outbox[0]!) : new Uint8Array(Buffer.concat(this.outbox));
    this.outbox = [];
    // A fresh copy owns its buffer: transferred, not cloned again.
    this.port!.postMessage({ data: bytes } satisfies Frame, [bytes.buffer]);
  };

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.release();
    this.port?.close();
    callback(error);
  }

  private whenAttached(then: () => void): void {
    if (this.port) then();
    else this.waiting.push(then);
  }
}
