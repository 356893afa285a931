/**
 * The connection (protocol §1, §6): the client's MQTT connections (the main one and the
 * real-time lane), which one a message or a subscription takes, what waits to be written and
 * in which order, reconnection, and the signatures of what leaves and arrives (§12). The rest
 * of the client writes and subscribes through the Transport.
 */
export { Transport, type OutboundMessage, type TransportHooks } from './transport.js';
export { CLOSE_GRACE_MS } from './connection.js';
// Types only: signing needs Node's crypto, and the runtime brings it (runtime.ts).
export type { Signer, Verifier } from './signing.js';
