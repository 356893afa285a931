/**
 * The policy `relais init` writes (issue 7 §1, §4): five roles. The built-in rules
 * (policy.ts BUILTIN_RULES) still apply on top: these rules only say what each role may do
 * within the topic contract.
 */
import { parsePolicy, type Policy, type PolicyInput } from './policy.js';

export const DEFAULT_POLICY_DATA = {
  version: 1,
  roles: {
    admin: { description: 'operates the bus: calls any action, reads everything (the whole history too), may kill requests', grants: ['wildcards', 'responses', 'requests', 'system', 'history:read-all', 'requests:kill-any'] },
    router: { description: 'the router and registry (protocol §11): reads everything, serves the relais/ actions', grants: ['wildcards', 'responses', 'requests', 'system'] },
    service: { description: 'serves actions (a handler, an agent)', grants: [] },
    client: { description: 'calls actions, reads its own responses, publishes notifications and logs', grants: [] },
    observer: { description: 'reads notifications, the event stream, the client registry and metrics; of the history, only what it is a party to unless granted history:read-all', grants: [] },
  },
  identities: {
    'relais-router': { roles: ['router'] },
  },
  rules: [
    {
      name: 'every identity: its presence, the directory, and the logs and contracts every library client serves (protocol §7, §11.4)',
      publish: ['relais/presence/${id}', 'relais/logs/get/response/+', 'relais/contracts/get/response/+'],
      subscribe: ['relais/presence/+', 'relais/logs/get/request/${id}', 'relais/logs/get/cancel', 'relais/contracts/get/request/${id}', 'relais/contracts/get/cancel'],
    },
    {
      name: "clients kill their own requests, admins anyone's: the router checks whose (requests:kill-any, protocol §11.5)",
      roles: ['client', 'service', 'admin'],
      publish: ['relais/requests/kill/request', 'relais/requests/kill/request/+'],
    },
    {
      name: 'clients call actions and read their own responses',
      roles: ['client', 'service', 'admin'],
      publish: ['${path}/request', '${path}/request/+', '${path}/cancel', '${path}/notification', '${path}/log'],
      subscribe: ['${path}/response/${id}'],
    },
    {
      name: 'clients ask the router (history, clients, events, metrics, logs of others)',
      roles: ['client', 'service', 'admin'],
      // Each untargeted and targeted (`/+`): the library sends a request to the router it found (protocol §4.6).
      publish: [
        'relais/history/get/request', 'relais/history/follow/request', 'relais/history/follow/cancel', 'relais/history/put/request',
        'relais/clients/list/get/request', 'relais/clients/detail/get/request', 'relais/events/get/request', 'relais/metrics/get/request',
        'relais/history/get/request/+', 'relais/history/follow/request/+', 'relais/history/put/request/+',
        'relais/clients/list/get/request/+', 'relais/clients/detail/get/request/+', 'relais/events/get/request/+', 'relais/metrics/get/request/+',
        'relais/logs/get/request/+', 'relais/logs/get/cancel', 'relais/contracts/get/request/+',
      ],
    },
    {
      name: 'services serve actions: any-handler and targeted commands, cancels; answer anyone',
      roles: ['service'],
      publish: ['${path}/response/+'],
      subscribe: ['${path}/request', '${path}/request/${id}', '${path}/cancel'],
    },
    {
      name: 'notifications and the event stream are readable by observers and clients',
      roles: ['observer', 'client', 'service'],
      subscribe: ['${path}/notification'],
    },
    {
      name: 'admins read everything the built-ins let them',
      roles: ['admin'],
      subscribe: ['#'],
    },
    {
      name: 'the router records everything, serves relais/, publishes its notifications, the cancels of kill and its answers to the broker journal (protocol §11)',
      roles: ['router'],
      publish: ['relais/${path}/response/+', 'relais/${path}/notification', '${path}/cancel', 'relais/history/stored'],
      subscribe: ['#'],
    },
    {
      name: "admins read the embedded broker's denial and connection counts (protocol §11.9)",
      roles: ['admin'],
      publish: ['relais/broker/stats/get/request'],
    },
    {
      name: 'observers ask the router what they may read: the history (their own rows, or all with history:read-all), clients, events, metrics',
      roles: ['observer'],
      publish: [
        'relais/history/get/request', 'relais/history/get/request/+', 'relais/history/follow/request', 'relais/history/follow/request/+', 'relais/history/follow/cancel',
        'relais/clients/list/get/request', 'relais/clients/list/get/request/+', 'relais/clients/detail/get/request', 'relais/clients/detail/get/request/+',
        'relais/events/get/request', 'relais/events/get/request/+', 'relais/metrics/get/request', 'relais/metrics/get/request/+',
      ],
      subscribe: ['relais/${path}/response/${id}'],
    },
  ],
} satisfies PolicyInput;

export function defaultPolicy(): Policy {
  return parsePolicy(structuredClone(DEFAULT_POLICY_DATA), 'default policy');
}
