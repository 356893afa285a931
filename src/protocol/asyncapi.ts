/**
 * An AsyncAPI 3.0 document of the actions served on the bus and their contracts
 * (protocol §7.6): per action, the command channel `<action>/request`, the targeted one
 * `<action>/request/{target}`, and the reply channel `<action>/response/{requester}`; the
 * message payloads are Relais envelopes (protocol §3) whose `payload` is the declared schema.
 */
import type { ContractDescription } from './contracts.js';
import { PRIORITIES } from './envelope.js';

export interface ServedContract extends ContractDescription {
  action: string;
  /** Ids of the clients announcing this contract. */
  servedBy: string[];
}

type Schema = Record<string, unknown>;

/** The envelope of protocol §3 around a payload schema. */
function envelope(type: 'command' | 'response', payload: Schema | undefined): Schema {
  return {
    type: 'object',
    required: ['type', 'source', 'token'],
    properties: {
      type: { const: type },
      source: { type: 'string', description: 'client id of the sender' },
      destination: { type: 'string' },
      token: { type: 'string', description: 'the request token (protocol §4)' },
      ...(type === 'command' ? { priority: { enum: [...PRIORITIES] }, deadline: { type: 'integer' } } : { code: { type: 'integer', description: 'protocol §5.1: 0 ok' }, progress: { type: 'number' } }),
      payload: withoutDialect(payload ?? {}),
    },
  };
}

/** Nested schemas carry no `$schema` of their own (AsyncAPI's schema format names the dialect). */
function withoutDialect(schema: Schema): Schema {
  const { $schema: _dialect, ...rest } = schema;
  return rest;
}

/** `relais/logs/get` → `relais_logs_get`: ids for channels, operations and messages. */
function idOf(action: string): string {
  return action.replace(/[^A-Za-z0-9_]/g, '_');
}

export function asyncApiDocument(contracts: readonly ServedContract[], title = 'Relais bus'): Schema {
  const channels: Record<string, Schema> = {};
  const operations: Record<string, Schema> = {};
  const messages: Record<string, Schema> = {};
  for (const contract of [...contracts].sort((a, b) => a.action.localeCompare(b.action))) {
    const id = idOf(contract.action);
    messages[`${id}_command`] = { name: `${contract.action} command`, contentType: 'application/json', payload: envelope('command', contract.input) };
    messages[`${id}_response`] = { name: `${contract.action} response`, contentType: 'application/json', payload: envelope('response', contract.output) };
    const command = { $ref: `#/components/messages/${id}_command` };
    const response = { $ref: `#/components/messages/${id}_response` };
    channels[`${id}_request`] = { address: `${contract.action}/request`, description: 'to any handler of the action', messages: { command } };
    channels[`${id}_request_target`] = { address: `${contract.action}/request/{target}`, parameters: { target: { description: 'client id of the handler' } }, messages: { command } };
    channels[`${id}_response`] = { address: `${contract.action}/response/{requester}`, parameters: { requester: { description: 'client id of the requester' } }, messages: { response } };
    operations[`${id}_call`] = {
      action: 'send',
      title: contract.action,
      ...(contract.description !== undefined && { description: contract.description }),
      summary: `served by ${contract.servedBy.join(', ')} (contract ${contract.hash})`,
      channel: { $ref: `#/channels/${id}_request` },
      messages: [{ $ref: `#/channels/${id}_request/messages/command` }],
      reply: { channel: { $ref: `#/channels/${id}_response` }, messages: [{ $ref: `#/channels/${id}_response/messages/response` }] },
    };
  }
  return {
    asyncapi: '3.0.0',
    info: { title, version: '1.0.0', description: 'Actions served on a Relais bus, as their handlers declare them (docs/protocol.md §7.6).' },
    defaultContentType: 'application/json',
    channels,
    operations,
    components: { messages },
  };
}
