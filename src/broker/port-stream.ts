/**
 * A byte stream over a worker thread's MessagePort: `relais start` runs its router in a worker
 * thread (its own core) that still reaches the embedded broker without a socket. Each end is a
 * Duplex; bytes cross as copies (a pooled Buffer cannot be transferred).
 */
import { Duplex } from 'node:stream';
import type { MessagePort } from 'node:worker_threads';

type Frame = { data: Uint8Array } | { end: true };

export class PortStream extends Duplex {
  private port: MessagePort | undefined;
  private readonly waiting: Array<() => void> = [];
  /** Bytes written in this turn: one message per turn, not one per MQTT packet (a message costs ~10 µs). */
  private outbox: Buffer[] = [];

  /** `port` now, or later with `attach()` (writes wait for it). */
  constructor(port?: MessagePort) {
    super();
    if (port) this.attach(port);
  }

  attach(port: MessagePort): void {
    this.port = port;
    port.on('message', (frame: Frame) => {
      if ('end' in frame) this.push(null);
      else this.push(Buffer.from(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength));
    });
    port.on('close', () => this.destroy());
    for (const resume of this.waiting.splice(0)) resume();
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.outbox.length === 0) setImmediate(() => this.whenAttached(this.sendOutbox));
    this.outbox.push(chunk);
    callback();
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
    this.port?.close();
    callback(error);
  }

  private whenAttached(then: () => void): void {
    if (this.port) then();
    else this.waiting.push(then);
  }
}
