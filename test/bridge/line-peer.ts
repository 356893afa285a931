/** The MVP peer's end of a line in tests: writes lines and waits for the ones the bridge writes. */
import type { Duplex } from 'node:stream';

export class LinePeer {
  readonly received: Array<Record<string, any>> = [];
  private buffered = '';
  private readonly waiters = new Set<() => void>();

  constructor(readonly stream: Duplex) {
    stream.on('data', (chunk: Buffer) => {
      this.buffered += chunk.toString('utf8');
      let newline: number;
      while ((newline = this.buffered.indexOf('\n')) >= 0) {
        const line = this.buffered.slice(0, newline);
        this.buffered = this.buffered.slice(newline + 1);
        if (line) this.received.push(JSON.parse(line) as Record<string, any>);
      }
      for (const waiter of this.waiters) waiter();
    });
  }

  send(message: unknown): void {
    this.stream.write(`${JSON.stringify(message)}\n`);
  }

  sendRaw(bytes: Buffer | string): void {
    this.stream.write(bytes);
  }

  /** The first received line (not taken before) matching `match`; rejects after `timeout` ms. */
  next(match: (line: Record<string, any>) => boolean, timeout = 5000): Promise<Record<string, any>> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const index = this.received.findIndex(match);
        if (index < 0) return;
        const [line] = this.received.splice(index, 1);
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve(line!);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`no matching line within ${timeout} ms; received: ${JSON.stringify(this.received).slice(0, 2000)}`));
      }, timeout);
      this.waiters.add(check);
      check();
    });
  }
}
