/** The `relais` package: the client library, the protocol helpers and the embedded broker. */
export * from './library.js';
export { connect } from './client/connect.js';
export { asyncApiDocument, type ServedContract } from './protocol/asyncapi.js';
export { startEmbeddedBroker, BrokerStartError, BROKER_DEFAULTS, BROKER_LIMITS, isLoopbackHost, type EmbeddedBroker, type EmbeddedBrokerOptions, type BrokerLimits } from './broker/index.js';
export { loadSealingKeys, listSealingKeys, readSealingPrivateKey, generateSealingKey, revokeSealingKey, SealingKeysError, type SealingKeys, type SealingKeyRecord } from './security/sealing-keys.js';
export type { PublicSealingKey } from './security/sealing.js';
