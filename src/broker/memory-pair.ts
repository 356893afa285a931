/**
 * Two connected in-memory streams: what one end writes, the other reads. `relais start` runs
 * the router beside the embedded broker on such a pair, so recording costs no TCP hop
 * (no syscalls, no copies through the kernel). Node 20 has no `duplexPair()` (22.6 does).
 */
import { Duplex } from 'node:stream';

class MemoryEnd extends Duplex {
  peer!: MemoryEnd;
  /** The write callback held while the peer's read buffer is full (backpressure). */
  private held: ((error?: Error | null) => void) | undefined;

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.deliver(Buffer.from(chunk), callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.deliver(Buffer.concat(chunks.map(({ chunk }) => chunk)), callback);
  }

  /**
   * Hands the bytes to the other end in a later turn, as a socket does. Delivered in the same
   * turn, an answer can come back before the writer has finished its bookkeeping (Aedes then
   * meets a PUBACK for a packet it has not stored yet and drops the client: "no such packet").
   * The bytes are a copy, as a socket makes: writers may reuse a buffer once its write called back.
   */
  private deliver(bytes: Buffer, callback: (error?: Error | null) => void): void {
    setImmediate(() => {
      if (this.peer.destroyed) return callback(new Error('the other end of the in-memory connection is closed'));
      if (this.peer.push(bytes)) callback();
      else this.peer.held = callback;
    });
  }

  override _read(): void {
    const held = this.held;
    this.held = undefined;
    held?.();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.peer.push(null);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const held = this.held;
    this.held = undefined;
    held?.(error ?? new Error('the in-memory connection is closed'));
    if (!this.peer.destroyed) {
      this.peer.push(null);
      this.peer.destroy();
    }
    callback(error);
  }
}

/** `[client end, server end]`. Destroying either closes both. */
export function memoryPair(): [Duplex, Duplex] {
  const a = new MemoryEnd();
  const b = new MemoryEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
