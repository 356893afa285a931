/**
 * `relais contracts [--action A] [--json] [--asyncapi [FILE]]`: the contracts of the actions
 * served on the bus (protocol §7.6), gathered from the clients the router's registry lists:
 * each announces its contracts' hashes in presence, and one client per contract is asked
 * for it whole (`relais/contracts/get`).
 */
import fs from 'node:fs';
import { Command } from 'commander';
import { readAllPages, REGISTRY_ACTIONS, type Bus, type ClientDetailPayload } from '../library.js';
import { CONTRACTS_ACTION, type ContractDescription, type ContractsAnswer } from '../protocol/contracts.js';
import { asyncApiDocument, type ServedContract } from '../protocol/asyncapi.js';
import { addConnectionOptions, writeLine, type GlobalOptions } from './common.js';
import { withRouter } from './router-client.js';

interface ContractsOptions extends GlobalOptions {
  action?: string;
  json?: boolean;
  /** `--asyncapi` alone: standard output; with a file name, that file. */
  asyncapi?: string | true;
}

export function contractsCommand(): Command {
  return addConnectionOptions(new Command('contracts'))
    .description('print the contracts (payload and result schemas) of the actions served on the bus, or write them as an AsyncAPI 3 document')
    .option('-a, --action <action>', 'only this action')
    .option('--json', 'one JSON line per contract')
    .option('--asyncapi [file]', "print an AsyncAPI 3.0 document of the actions, or write it to this file ('-': standard output too)")
    .action((options: ContractsOptions) =>
      withRouter(options, REGISTRY_ACTIONS.detailGet, 'relais contracts lists the clients through the registry', async (bus) => {
        const contracts = (await gather(bus)).filter((contract) => options.action === undefined || contract.action === options.action);
        if (contracts.length === 0) process.stderr.write(`relais: ${nothingDeclared(options.action)}${options.asyncapi !== undefined ? ': the AsyncAPI document has no channels' : ''}\n`);
        if (options.asyncapi !== undefined) {
          const text = `${JSON.stringify(asyncApiDocument(contracts), null, 2)}\n`;
          if (options.asyncapi === true || options.asyncapi === '-') process.stdout.write(text);
          else {
            fs.writeFileSync(options.asyncapi, text);
            process.stderr.write(`relais: AsyncAPI 3.0 document of ${contracts.length} action(s) written to ${options.asyncapi}\n`);
          }
          return;
        }
        for (const contract of contracts) {
          if (options.json) writeLine(contract);
          else process.stdout.write(describe(contract));
        }
      }),
    );
}

/** What to say when no contract was found: no connected client declares one (contracts are optional, protocol §7.6). */
function nothingDeclared(action: string | undefined): string {
  return action === undefined ? 'no connected client declares a contract for its actions' : `no connected client serving ${action} declares a contract for it`;
}

/** Every distinct contract announced by a live client, fetched once each. */
async function gather(bus: Bus): Promise<ServedContract[]> {
  const { clients } = await readAllPages((page) => bus.request<ClientDetailPayload>(REGISTRY_ACTIONS.detailGet, page, { timeout: 10_000 }));
  const byContract = new Map<string, { action: string; hash: string; servedBy: string[] }>();
  for (const [id, detail] of Object.entries(clients)) {
    const announced = detail.info.contracts;
    if (detail.status !== 'alive' || typeof announced !== 'object' || announced === null) continue;
    for (const [action, hash] of Object.entries(announced as Record<string, unknown>)) {
      if (typeof hash !== 'string') continue;
      const key = `${action} ${hash}`;
      const entry = byContract.get(key) ?? { action, hash, servedBy: [] };
      entry.servedBy.push(id);
      byContract.set(key, entry);
    }
  }
  // One question per client, however many of its contracts are wanted.
  const askers = new Map<string, Promise<Record<string, ContractDescription>>>();
  const ask = (id: string) => {
    let answer = askers.get(id);
    if (!answer) {
      answer = bus.request<ContractsAnswer>(CONTRACTS_ACTION, {}, { target: id, timeout: 5000 }).then((reply) => reply.actions);
      askers.set(id, answer);
    }
    return answer;
  };
  const found: ServedContract[] = [];
  for (const { action, hash, servedBy } of byContract.values()) {
    const contract = (await ask(servedBy[0]!).catch(() => ({}) as Record<string, ContractDescription>))[action];
    if (contract) found.push({ action, ...contract, hash, servedBy: servedBy.sort() });
    else process.stderr.write(`relais: ${servedBy[0]} announces a contract for ${action} but did not give it\n`);
  }
  return found.sort((a, b) => a.action.localeCompare(b.action) || a.hash.localeCompare(b.hash));
}

function describe(contract: ServedContract): string {
  const lines = [`${contract.action}  (served by ${contract.servedBy.join(', ')}; contract ${contract.hash})`];
  if (contract.description !== undefined) lines.push(`  ${contract.description}`);
  lines.push(`  payload: ${contract.input ? JSON.stringify(contract.input) : '(not declared)'}`);
  lines.push(`  result:  ${contract.output ? JSON.stringify(contract.output) : '(not declared)'}`);
  return `${lines.join('\n')}\n`;
}
