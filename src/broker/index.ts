export { startEmbeddedBroker, BrokerStartError, BROKER_DEFAULTS, isLoopbackHost } from './embedded.js';
export type { EmbeddedBroker, EmbeddedBrokerOptions } from './embedded.js';
export { BROKER_LIMITS, HeaderScanner, MAX_REMAINING_LENGTH } from './limits.js';
export type { BrokerLimits, HeaderVerdict } from './limits.js';
export { BROKER_SOURCE } from './enforce.js';
export type { BrokerSecurity, DenialCounts } from './enforce.js';
