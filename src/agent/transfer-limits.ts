/**
 * What one requester may hold of an agent's transfers (docs/agent.md "Limits"): slots and
 * bytes per identity, beside the agent's own total, and how long a silent transfer keeps its
 * slot. A transfer that has moved nothing is freed after `stallTimeout`; each part of its file
 * it moves earns it more silence, up to `idleTimeout` near the end; any progress starts the
 * clock again, so a slow transfer that moves is never freed.
 */
import { BusyError } from '../protocol/errors.js';
import type { TransferSettings } from './transfer.js';

type SlotLimits = Pick<TransferSettings, 'maxTransfers' | 'maxTransfersPerIdentity' | 'maxBytesPerIdentity'>;

/** The open transfers of the agent, both directions, counted as a whole and per identity. */
export class TransferSlots {
  private total = 0;
  private readonly byIdentity = new Map<string, { count: number; bytes: number }>();

  constructor(private readonly limits: SlotLimits) {}

  get open(): number {
    return this.total;
  }

  /**
   * Takes a slot for `identity`, that will hold `bytes` of partial file (an upload's size; 0
   * for a download), or refuses with code 8 naming the limit reached. Returns its release
   * (safe to call twice).
   */
  take(identity: string, bytes: number): () => void {
    const held = this.byIdentity.get(identity) ?? { count: 0, bytes: 0 };
    if (this.total >= this.limits.maxTransfers) {
      throw new BusyError(`this agent has ${this.total} transfers open (services.transfer.maxTransfers); try again later`, { details: { limit: 'maxTransfers' } });
    }
    if (held.count >= this.limits.maxTransfersPerIdentity) {
      throw new BusyError(`${identity} has ${held.count} transfers open on this agent (services.transfer.maxTransfersPerIdentity); end one, or wait for it to time out`, { details: { limit: 'maxTransfersPerIdentity' } });
    }
    if (held.bytes + bytes > this.limits.maxBytesPerIdentity) {
      throw new BusyError(`${identity} has uploads of ${held.bytes} bytes open on this agent; ${bytes} more is over ${this.limits.maxBytesPerIdentity} (services.transfer.maxBytesPerIdentity)`, { details: { limit: 'maxBytesPerIdentity' } });
    }
    held.count += 1;
    held.bytes += bytes;
    this.byIdentity.set(identity, held);
    this.total += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total -= 1;
      held.count -= 1;
      held.bytes -= bytes;
      if (held.count === 0) this.byIdentity.delete(identity);
    };
  }
}

/** The silence a transfer that has moved `fraction` of its file may keep, in ms. */
export function allowedSilenceMs(settings: Pick<TransferSettings, 'stallTimeout' | 'idleTimeout'>, fraction: number): number {
  const moved = Math.min(Math.max(fraction, 0), 1);
  return Math.round((settings.stallTimeout + (settings.idleTimeout - settings.stallTimeout) * moved) * 1000);
}

/** One transfer's clock: `expired` runs once it stays silent longer than its progress earns. */
export class SilenceClock {
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly settings: Pick<TransferSettings, 'stallTimeout' | 'idleTimeout'>,
    private readonly expired: (allowedMs: number) => void,
  ) {}

  /** The transfer moved bytes (or just opened): the clock starts again, with what `fraction` earns. */
  restart(fraction: number): void {
    clearTimeout(this.timer);
    const allowed = allowedSilenceMs(this.settings, fraction);
    this.timer = setTimeout(() => this.expired(allowed), allowed);
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
