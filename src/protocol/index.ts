export * from './topics.js';
export * from './envelope.js';
export * from './messages.js';
export * from './errors.js';
export * from './binary.js';
export * from './registry.js';
export * from './logs.js';
export * from './sites.js';
