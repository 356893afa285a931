/**
 * The bus contract on a 3-node NATS cluster, each client on the next node: a handler and its
 * requester are always on different nodes, so every command, answer, cancel and presence
 * crosses the cluster's routes (and JetStream for QoS 1, docs/protocol.md §1.3).
 */
import { busContract } from '../integration/bus-contract.js';
import { peerGate } from '../testkit/index.js';
import { setupNatsCluster } from '../testkit/nats-cluster.js';

busContract('nats', {
  name: 'a 3-node NATS cluster, requester and handler on different nodes',
  skip: peerGate('nats-server', 'the bus contract on a NATS cluster').skip,
  setup: () => setupNatsCluster({ nodes: 3 }),
  // Presences, wills and subscriptions cross JetStream: on a loaded 2-core machine a handler
  // took over 5 s to appear on another node, and a restart of every node over 15 s to settle.
  patience: 4,
});
