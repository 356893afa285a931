/**
 * The serving side (protocol §4.2–§4.4, §4.7, §4.8, §7.6, §11.4): the actions this client
 * handles, each command run once (the checks of src/protocol/command-admission.ts), its
 * acknowledgement, progress, cancel and deadline, the duplicates answered from memory, and the
 * declared contracts.
 */
export { Handlers } from './handlers.js';
export { ContractError, describeContract, withContract, type Contract } from './contracts.js';
// Types only: logs on demand need Node, and the runtime brings them (runtime.ts).
export type { LogService } from './log-service.js';
