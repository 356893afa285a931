export { startEmbeddedBroker, BrokerStartError, BROKER_DEFAULTS, isLoopbackHost } from './embedded.js';
export type { EmbeddedBroker, EmbeddedBrokerOptions } from './embedded.js';
