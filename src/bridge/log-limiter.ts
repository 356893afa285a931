/**
 * Bad input from a bridge's peer is logged, but a peer sending garbage as fast as it can must not
 * flood the log: at most `perWindow` lines per `windowMs`, then one line saying how many were left out.
 */
import type { Logger } from 'pino';

export class LogLimiter {
  private windowStart = 0;
  private logged = 0;
  private suppressed = 0;

  constructor(
    private readonly logger: Logger,
    private readonly perWindow = 20,
    private readonly windowMs = 10_000,
  ) {}

  warn(details: Record<string, unknown>, message: string): void {
    const now = Date.now();
    if (now - this.windowStart >= this.windowMs) {
      if (this.suppressed > 0) this.logger.warn({ suppressed: this.suppressed }, `${this.suppressed} more bad inputs were not logged in the last ${this.windowMs} ms`);
      this.windowStart = now;
      this.logged = 0;
      this.suppressed = 0;
    }
    if (this.logged < this.perWindow) {
      this.logged += 1;
      this.logger.warn(details, message);
    } else {
      this.suppressed += 1;
    }
  }
}
