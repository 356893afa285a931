export { startEmbeddedBroker, BrokerStartError, BROKER_DEFAULTS } from './embedded.js';
export type { EmbeddedBroker, EmbeddedBrokerOptions } from './embedded.js';
