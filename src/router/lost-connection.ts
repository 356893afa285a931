/**
 * The router's streams (a history follow, a kv watch) end when the router's own connection is
 * lost: the steps written as it died may never have left, and a stream goes on past them, so
 * its requester would miss them for good. Ended with `StreamInterruptedError`, a stream is asked
 * again from the last item its requester handled (protocol §11.2, §14.9).
 */
import type { Bus } from '../client/bus.js';
import { StreamInterruptedError } from '../protocol/errors.js';

export interface LostConnectionWatch {
  /** Throws `StreamInterruptedError` once the connection was lost since the stream began. */
  check(): void;
  stop(): void;
}

/** Watches `bus` for a lost connection while a stream runs; `wake` is called when it is. */
export function watchLostConnection(bus: Pick<Bus, 'on' | 'off'>, wake: () => void): LostConnectionWatch {
  let lost = false;
  const onOffline = () => {
    lost = true;
    wake();
  };
  bus.on('offline', onOffline);
  return {
    check() {
      if (lost) throw new StreamInterruptedError("the router's connection was lost, and steps with it perhaps: ask again after the last item handled");
    },
    stop() {
      bus.off('offline', onOffline);
    },
  };
}
