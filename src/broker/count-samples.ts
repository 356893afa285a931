/**
 * The broker's totals sampled at a fixed interval for the last hour (protocol §11.9): the
 * per-second figures of the last interval, and the differences over a span (`{"since": …}`,
 * what `relais stats --since 5m` shows). Pure: the caller takes the samples.
 */
import type { BrokerSpan, DenialKinds, InOut } from '../protocol/broker-stats.js';
import type { CutOffCounts } from './limits.js';
import { noTraffic, type TrafficCounts } from './traffic.js';

export interface CountSample {
  /** When taken (epoch ms). */
  at: number;
  traffic: TrafficCounts;
  denials: DenialKinds | null;
  cutOffs: CutOffCounts;
}

/** The totals of the moment, copied (the broker's counters go on moving). */
export function sampleOf(at: number, traffic: TrafficCounts, denials: DenialKinds | null, cutOffs: CutOffCounts): CountSample {
  return {
    at,
    traffic: { ...traffic },
    denials: denials && { connect: denials.connect, subscribe: denials.subscribe, publish: denials.publish, source: denials.source },
    cutOffs: { ...cutOffs },
  };
}

export class CountSamples {
  private readonly samples: CountSample[];

  /**
   * `start`: the broker's start, when every count was 0. `keep`: how many samples to keep
   * (the oldest go first), besides the one a span starts from.
   */
  constructor(
    start: number,
    private readonly keep: number,
    security: boolean,
  ) {
    this.samples = [sampleOf(start, noTraffic(), security ? { connect: 0, subscribe: 0, publish: 0, source: 0 } : null, { packet: 0, connectTimeout: 0, keepalive: 0, slowConsumer: 0 })];
  }

  add(sample: CountSample): void {
    this.samples.push(sample);
    if (this.samples.length > this.keep + 1) this.samples.shift();
  }

  /** Messages and bytes: totals from `current`, per second over the last interval sampled (or since the first sample, before a second one). */
  figures(current: CountSample): { messages: InOut; bytes: InOut } {
    const newest = this.samples.at(-1)!;
    const [from, until] = this.samples.length >= 2 ? [this.samples.at(-2)!, newest] : [newest, current];
    const rates = traffic(from, until);
    return {
      messages: { in: current.traffic.messagesIn, out: current.traffic.messagesOut, inPerSecond: rates.messages.inPerSecond, outPerSecond: rates.messages.outPerSecond },
      bytes: { in: current.traffic.bytesIn, out: current.traffic.bytesOut, inPerSecond: rates.bytes.inPerSecond, outPerSecond: rates.bytes.outPerSecond },
    };
  }

  /** What changed from the newest sample taken at or before `since` (the oldest kept, if none) to `current`. */
  since(since: number, current: CountSample): BrokerSpan {
    let base = this.samples[0]!;
    for (const sample of this.samples) {
      if (sample.at > since) break;
      base = sample;
    }
    const denials = current.denials && base.denials && {
      connect: current.denials.connect - base.denials.connect,
      subscribe: current.denials.subscribe - base.denials.subscribe,
      publish: current.denials.publish - base.denials.publish,
      source: current.denials.source - base.denials.source,
    };
    const cutOffs = {
      packet: current.cutOffs.packet - base.cutOffs.packet,
      connectTimeout: current.cutOffs.connectTimeout - base.cutOffs.connectTimeout,
      keepalive: current.cutOffs.keepalive - base.cutOffs.keepalive,
      slowConsumer: current.cutOffs.slowConsumer - base.cutOffs.slowConsumer,
    };
    return { from: base.at, until: current.at, ...traffic(base, current), denials, cutOffs };
  }
}

/** The traffic between two samples: differences, and per second over the time between them. */
function traffic(from: CountSample, until: CountSample): { messages: InOut; bytes: InOut } {
  const seconds = Math.max(0.001, (until.at - from.at) / 1000);
  const perSecond = (count: number) => Math.round((count / seconds) * 100) / 100;
  const difference = (key: keyof TrafficCounts) => until.traffic[key] - from.traffic[key];
  const [messagesIn, messagesOut, bytesIn, bytesOut] = [difference('messagesIn'), difference('messagesOut'), difference('bytesIn'), difference('bytesOut')];
  return {
    messages: { in: messagesIn, out: messagesOut, inPerSecond: perSecond(messagesIn), outPerSecond: perSecond(messagesOut) },
    bytes: { in: bytesIn, out: bytesOut, inPerSecond: perSecond(bytesIn), outPerSecond: perSecond(bytesOut) },
  };
}
