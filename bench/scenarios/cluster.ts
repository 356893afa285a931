/**
 * A NATS cluster (protocol §1.3 "On a NATS cluster"): requester and handler on different
 * nodes of a 3-node nats-server cluster, each in its own process; Relais against raw MQTT.js
 * at QoS 0 and QoS 1 across the same nodes and nats.js native request/reply across them.
 * The targets: Relais's p50 at most 1.5x raw QoS 0's, its req/s at least 0.8x.
 *
 *   npm run bench -- --only cluster
 */
import { clusterContenders } from '../peers/contenders.js';
import { figures, peersTables } from '../peers/report.js';
import type { Table } from '../lib/util.js';
import { runPeers, type PeersConfig, type PeersResult } from './peers.js';

export interface ClusterConfig {
  peers: PeersConfig;
}

export interface ClusterResult {
  config: ClusterConfig;
  run: PeersResult;
  failed: boolean;
}

export async function runCluster(config: ClusterConfig): Promise<ClusterResult> {
  const run = await runPeers({ ...config.peers, contenders: clusterContenders() });
  const failed = run.results.some((result) => result.failed || result.skipped) || run.leftovers.length > 0;
  return { config, run, failed };
}

export function clusterTables(result: ClusterResult): Table[] {
  const all = result.run.results.filter((r) => !r.skipped && !r.failed).map(figures);
  const relais = all.find((f) => f.result.contender.family === 'relais');
  const raw0 = all.find((f) => f.result.contender.family === 'raw-qos0');
  const targets: Table[] = [];
  if (relais && raw0) {
    const latency = relais.seq.p50 / raw0.seq.p50;
    const throughput = relais.tput / raw0.tput;
    targets.push({
      title: 'Targets: Relais against raw MQTT.js QoS 0, requester and handler on different nodes',
      columns: ['measure', 'Relais / raw QoS 0', 'target', ''],
      rows: [
        ['sequential p50', `${latency.toFixed(2)}x`, '≤ 1.5x', latency <= 1.5 ? 'met' : '**missed**'],
        ['req/s, 100 in flight', `${throughput.toFixed(2)}x`, '≥ 0.8x', throughput >= 0.8 ? 'met' : '**missed**'],
      ],
    });
  }
  // The first table only: the others compare against the single-broker set-ups this scenario does not run.
  return [peersTables(result.run)[0]!, ...targets];
}
