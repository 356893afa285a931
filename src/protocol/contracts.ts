/**
 * Contracts on the wire (protocol §7.6): the built-in action every library client serves,
 * and a contract as it travels, JSON Schemas and the hash presence announces. Pure: no I/O.
 */

/** Targeted only, like `relais/logs/get`: asked of the client that announces the contract. */
export const CONTRACTS_ACTION = 'relais/contracts/get';

/** A contract as it travels: JSON Schemas (draft 7) and the hash presence announces. */
export interface ContractDescription {
  input?: Record<string, unknown>;
  output?: Record<string, unknown>;
  description?: string;
  /** First 16 hex digits of the SHA-256 of the above, as JSON: tells contracts apart. */
  hash: string;
}

/** The answer of `relais/contracts/get`: the client's contracts, by action. */
export interface ContractsAnswer {
  actions: Record<string, ContractDescription>;
}
