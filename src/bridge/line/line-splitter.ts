/**
 * Cuts a byte stream into lines of at most `maxLineBytes`. A longer line is dropped as it comes
 * (what was buffered of it is released, the rest is skipped up to the next newline), so a peer
 * that never sends a newline costs at most `maxLineBytes` of memory, and the next line is whole.
 */
export interface SplitterEvents {
  line(bytes: Buffer): void;
  /** A line longer than the limit was skipped; `bytes` is its length, newline excluded. */
  oversized(bytes: number): void;
}

export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Length of the oversized line being skipped, or -1 when not skipping. */
  private skipped = -1;

  constructor(
    private readonly maxLineBytes: number,
    private readonly events: SplitterEvents,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(0x0a, start);
      const end = newline < 0 ? chunk.length : newline;
      this.take(chunk.subarray(start, end));
      if (newline < 0) return;
      this.endLine();
      start = newline + 1;
    }
  }

  /** The stream ended or broke: a line without its newline is incomplete, so it is dropped. */
  reset(): void {
    this.pending = [];
    this.pendingBytes = 0;
    this.skipped = -1;
  }

  private take(piece: Buffer): void {
    if (piece.length === 0) return;
    if (this.skipped >= 0) {
      this.skipped += piece.length;
      return;
    }
    if (this.pendingBytes + piece.length > this.maxLineBytes) {
      this.skipped = this.pendingBytes + piece.length;
      this.pending = [];
      this.pendingBytes = 0;
      return;
    }
    // A copy: the chunk's buffer may be reused by the stream.
    this.pending.push(Buffer.from(piece));
    this.pendingBytes += piece.length;
  }

  private endLine(): void {
    if (this.skipped >= 0) {
      const length = this.skipped;
      this.skipped = -1;
      this.events.oversized(length);
      return;
    }
    let line = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    if (line.length > 0) this.events.line(line);
  }
}
