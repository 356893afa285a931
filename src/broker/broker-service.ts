/**
 * The embedded broker's own service on the bus (protocol §11.9): an ordinary in-process client,
 * `relais-broker`, that answers `relais/broker/stats/get` with the broker's denial counts,
 * open connections, resource-limit cut-offs and message traffic, sampled every 10 s for the
 * per-second figures and the spans of the last hour. `relais start` runs the router in a worker
 * thread, so these counts, which live in the broker's thread, are served from here.
 */
import type { Logger } from 'pino';
import type { Bus } from '../client/bus.js';
import { connect } from '../client/connect.js';
import { InvalidMessageError } from '../protocol/errors.js';
import { BROKER_SAMPLE_EVERY_MS, BROKER_SAMPLES_KEPT_MS, BROKER_STATS_ACTION, brokerStatsQuerySchema, type BrokerStats } from '../protocol/broker-stats.js';
import { CountSamples, sampleOf, type CountSample } from './count-samples.js';
import type { EmbeddedBroker } from './embedded.js';
import { BROKER_SOURCE } from './enforce.js';

export interface BrokerService {
  readonly bus: Bus;
  close(): Promise<void>;
}

/** The broker's totals now. */
function currentSample(broker: EmbeddedBroker, now: number): CountSample {
  return sampleOf(now, broker.traffic, broker.denials ?? null, broker.cutOffs);
}

/** What `broker` has counted so far, with the `top` rules that denied most; with `since`, the span from then too. */
export function brokerStats(broker: EmbeddedBroker, samples: CountSamples, query: { top: number; since?: number | undefined }, now = Date.now()): BrokerStats {
  const denials = broker.denials;
  const { top } = query;
  const current = currentSample(broker, now);
  return {
    startedAt: broker.startedAt,
    now,
    uptimeSeconds: Math.floor((now - broker.startedAt) / 1000),
    connections: { open: broker.aedes.connectedClients },
    denials: denials
      ? {
          connect: denials.connect,
          subscribe: denials.subscribe,
          publish: denials.publish,
          source: denials.source,
          topRules: [...denials.byRule]
            .sort(([a, m], [b, n]) => n - m || a.localeCompare(b))
            .slice(0, top)
            .map(([rule, count]) => ({ rule, count })),
          rules: denials.byRule.size,
        }
      : null,
    cutOffs: { ...broker.cutOffs },
    ...samples.figures(current),
    ...(query.since !== undefined && { span: samples.since(query.since, current) }),
  };
}

/** Connects `relais-broker` to `broker` in-process (trusted: no token, no policy) and serves the stats action. */
export async function startBrokerService(broker: EmbeddedBroker, options: { logger?: Logger; sampleEveryMs?: number } = {}): Promise<BrokerService> {
  const sampleEveryMs = options.sampleEveryMs ?? BROKER_SAMPLE_EVERY_MS;
  const samples = new CountSamples(broker.startedAt, Math.ceil(BROKER_SAMPLES_KEPT_MS / sampleEveryMs), broker.denials !== undefined);
  const bus = await connect({
    id: BROKER_SOURCE,
    stream: () => broker.connectInProcess(),
    realtimeLane: false,
    info: { role: 'broker' },
    ...(options.logger && { logger: options.logger }),
  });
  const sampler = setInterval(() => samples.add(currentSample(broker, Date.now())), sampleEveryMs);
  sampler.unref();
  try {
    await bus.handle(BROKER_STATS_ACTION, (payload: unknown) => {
      const query = brokerStatsQuerySchema.safeParse(payload ?? {});
      if (!query.success) {
        // Bad input is the sender's mistake: code 2 naming the field (protocol §5.2).
        throw new InvalidMessageError(`bad query: ${query.error.issues.map((issue) => `${issue.path.join('.') || '(payload)'}: ${issue.message}`).join('; ')}`);
      }
      return brokerStats(broker, samples, query.data);
    });
  } catch (error) {
    clearInterval(sampler);
    await bus.close();
    throw error;
  }
  return {
    bus,
    close: () => {
      clearInterval(sampler);
      return bus.close();
    },
  };
}
