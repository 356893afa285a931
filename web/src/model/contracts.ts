/**
 * An action's contract (protocol §7.6): asked of a client that announces one in its presence
 * (`info.contracts`, a hash per action), and turned into a check of the payload with zod's own
 * JSON Schema reader, the library the handler validates with.
 */
import { CONTRACTS_ACTION, type Bus, type ClientDetail, type ContractDescription, type ContractsAnswer } from 'relais/browser';
import { QUERY_TIMEOUT_MS } from './query.js';

export interface Contract extends ContractDescription {
  /** Who told us. */
  from: string;
}

/** The client that announces a contract for `action`, if any, and its hash. */
export function contractHolder(clients: Record<string, ClientDetail>, action: string): { id: string; hash: string } | undefined {
  for (const [id, client] of Object.entries(clients)) {
    const hash = (client.info.contracts as Record<string, unknown> | undefined)?.[action];
    if (client.status === 'alive' && typeof hash === 'string') return { id, hash };
  }
  return undefined;
}

export async function fetchContract(bus: Bus, holder: { id: string }, action: string): Promise<Contract | undefined> {
  const answer = await bus.request<ContractsAnswer>(CONTRACTS_ACTION, {}, { target: holder.id, timeout: QUERY_TIMEOUT_MS });
  const contract = answer.actions?.[action];
  return contract ? { ...contract, from: holder.id } : undefined;
}
