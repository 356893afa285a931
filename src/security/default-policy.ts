/**
 * The policy `relais init` writes (docs/security.md "The default policy"): seven
 * roles. The built-in rules (policy.ts BUILTIN_RULES) still apply on top: these rules only say
 * what each role may do within the topic contract. Least privilege: a service serves only the
 * actions its identity entry lists in `serves`, and the agents' actions (`system/`) are called
 * only by the roles a rule names.
 */
import { Document, isScalar, visit, type YAMLMap, type YAMLSeq } from 'yaml';
import { parsePolicy, type Policy, type PolicyInput } from './policy.js';

export const DEFAULT_POLICY_DATA = {
  version: 1,
  roles: {
    admin: { description: "operates the bus: calls any action (the agents' too), reads everything (the whole history too), may kill anyone's requests", grants: ['wildcards', 'responses', 'requests', 'system', 'restricted', 'history:read-all', 'requests:kill-any'] },
    router: { description: 'the router and registry (protocol §11): reads everything, serves the relais/ actions', grants: ['wildcards', 'responses', 'requests', 'system', 'restricted'] },
    service: { description: 'serves the actions its identity lists in "serves" (a handler, an agent); calls actions as a client does', grants: [] },
    client: { description: 'calls actions, reads its own responses, publishes notifications and logs', grants: [] },
    observer: { description: 'reads notifications, the event stream, the client registry and metrics; of the history, only what it is a party to unless granted history:read-all', grants: [] },
    'agent-user': { description: "calls the agents' actions (system/...: disks, files, commands, benchmark); give it beside client", grants: [] },
    site: {
      description:
        "the other end of a link (protocol §13): a site at the central, the central at a site. Carries commands and cancels to the clients it links, their responses, presences and notifications back, the link's status and roster; speaks only for ids no client here has and no other site claimed (builtin:site-claim); reads every history row (a central syncs a site's)",
      grants: ['presence', 'responses', 'requests', 'system', 'history:read-all'],
    },
  },
  identities: {
    'relais-router': { roles: ['router'] },
  },
  restricted: {
    system: "the agents' actions (docs/agent.md): reading and removing files, running commands; called only by admin and agent-user, served only by identities that list them in serves",
  },
  rules: [
    {
      name: 'every identity: its presence, the directory, and the logs and contracts every library client serves (protocol §7, §11.4)',
      publish: ['relais/presence/${id}', 'relais/logs/get/response/+', 'relais/contracts/get/response/+'],
      subscribe: ['relais/presence/+', 'relais/sites/#', 'relais/logs/get/request/${id}', 'relais/logs/get/cancel', 'relais/contracts/get/request/${id}', 'relais/contracts/get/cancel'],
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
        'relais/sites/get/request', 'relais/sites/get/request/+',
        'relais/kv/+/request', 'relais/kv/+/request/+', 'relais/kv/+/cancel',
        // The cancel the library sends for a request that timed out or was aborted (protocol §4.4): the router ignores one for a request it does not run.
        'relais/history/get/cancel', 'relais/history/put/cancel', 'relais/clients/list/get/cancel', 'relais/clients/detail/get/cancel',
        'relais/events/get/cancel', 'relais/metrics/get/cancel', 'relais/sites/get/cancel', 'relais/contracts/get/cancel',
      ],
    },
    {
      name: 'services serve the actions their identity lists in serves: any-handler and targeted commands, cancels; answer anyone; call them on themselves',
      roles: ['service'],
      publish: ['${serves}/response/+', '${serves}/request/${id}'],
      subscribe: ['${serves}/request', '${serves}/request/${id}', '${serves}/cancel'],
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
      name: 'observers ask the router what they may read: the history (their own rows, or all with history:read-all), clients, events, metrics; and the contracts clients serve',
      roles: ['observer'],
      publish: [
        'relais/history/get/request', 'relais/history/get/request/+', 'relais/history/follow/request', 'relais/history/follow/request/+', 'relais/history/follow/cancel',
        'relais/clients/list/get/request', 'relais/clients/list/get/request/+', 'relais/clients/detail/get/request', 'relais/clients/detail/get/request/+',
        'relais/events/get/request', 'relais/events/get/request/+', 'relais/metrics/get/request', 'relais/metrics/get/request/+',
        'relais/contracts/get/request/+', 'relais/sites/get/request', 'relais/sites/get/request/+',
        // The key-value store: the router lets an observer read only (the kv rules below).
        'relais/kv/+/request', 'relais/kv/+/request/+', 'relais/kv/+/cancel',
        // The cancels of its own requests (protocol §4.4).
        'relais/history/get/cancel', 'relais/clients/list/get/cancel', 'relais/clients/detail/get/cancel', 'relais/events/get/cancel',
        'relais/metrics/get/cancel', 'relais/contracts/get/cancel', 'relais/sites/get/cancel',
      ],
      subscribe: ['relais/${path}/response/${id}'],
    },
    {
      name: "agent users call the agents' actions (docs/agent.md)",
      roles: ['agent-user'],
      publish: ['system/${path}/request', 'system/${path}/request/+', 'system/${path}/cancel'],
      subscribe: ['system/${path}/response/${id}'],
    },
    {
      name: "a link's other end publishes its link's status, roster and round-trip probe, under its own name (protocol §13.2)",
      roles: ['site'],
      publish: ['relais/sites/${id}', 'relais/sites/${id}/clients', 'relais/sites/${id}/probe'],
    },
    {
      name: "a link's other end carries commands and cancels to the clients it links, and their responses, presences, notifications and logs (protocol §13.2)",
      roles: ['site'],
      publish: ['relais/presence/+', '${path}/request', '${path}/request/+', '${path}/cancel', '${path}/response/+', '${path}/notification', '${path}/log'],
      subscribe: ['${path}/request', '${path}/request/+', '${path}/cancel', '${path}/response/+', '${path}/notification'],
    },
    {
      name: "a link's other end carries the agents' actions (system/...): the central's admins run the agents of its sites",
      roles: ['site'],
      publish: ['system/${path}/request', 'system/${path}/request/+', 'system/${path}/cancel', 'system/${path}/response/+'],
      subscribe: ['system/${path}/request', 'system/${path}/request/+', 'system/${path}/cancel', 'system/${path}/response/+'],
    },
  ],
  // Who reads and writes which keys of the key-value store, decided by the router (protocol §14.8).
  kv: [
    {
      name: "every client reads and writes its own configuration (config/<its id>) and announces its schema (config-schema/<its id>)",
      roles: ['client', 'service', 'admin'],
      read: ['config/${id}'],
      write: ['config/${id}', 'config-schema/${id}'],
    },
    {
      name: 'clients, services and observers read the shared buckets (every bucket but config); writing one needs a rule',
      roles: ['client', 'service', 'observer'],
      read: ['*'],
    },
    {
      name: "admins read and write every bucket, every client's configuration included",
      roles: ['admin'],
      read: ['*', 'config'],
      write: ['*', 'config'],
    },
  ],
} satisfies PolicyInput;

/**
 * The default policy; `serves` grants services the actions they serve (`{ billing: ['billing/#'] }`,
 * what `relais identity add --serves` writes into a policy file): without it a service serves nothing.
 */
export function defaultPolicy(options: { serves?: Readonly<Record<string, readonly string[]>> } = {}): Policy {
  const data: PolicyInput = structuredClone(DEFAULT_POLICY_DATA);
  for (const [identity, serves] of Object.entries(options.serves ?? {})) data.identities = { ...data.identities, [identity]: { ...data.identities?.[identity], serves: [...serves] } };
  return parsePolicy(data, 'default policy');
}

/**
 * The default policy as the YAML file `relais init` writes: the same data (loading it gives
 * defaultPolicy()), with comments that tell the operator how to grant what least privilege
 * leaves out. YAML so that the comments survive (`relais identity add --serves` keeps them).
 */
export function defaultPolicyYaml(): string {
  const doc = new Document(structuredClone(DEFAULT_POLICY_DATA));
  doc.commentBefore = [
    ' The Relais authorisation policy (docs/security.md "Authorisation policy"), written by relais init.',
    ' Saving it (or kill -HUP) reloads it in a running relais start; a file that does not validate is',
    ' refused with the reason, and the policy in force stays. Try a decision without a broker:',
    '   relais policy check policy.yaml <identity> pub|sub <topic> --role <role>',
    '',
    ' A decision: the built-in rules deny first (others\' responses and targeted requests, others\'',
    ' presence, wildcards, relais/ and the restricted roots below), then the first rule that applies',
    ' to the identity and covers the topic allows; otherwise deny.',
    ' Least privilege: a service serves only the actions its identity lists under "serves", and the',
    ' agents\' actions (system/...) are called only by the roles a rule names (admin, agent-user, and',
    ' site, which carries them across a link).',
    '',
    ' Sites (docs/security.md "Sites"): the other end of a link is admitted with the role site (its',
    ' certificate: relais identity add poller-1 --cert --role site). This policy decides what it may do',
    ' HERE, as the other\'s policy decides what this end may do there. To narrow what every site may do:',
    ' edit the three rules of the role site (e.g. ${path} replaced by the roots their clients use:',
    ' billing/${path}/request), or delete the one carrying the agents\' actions to keep system/ off every',
    ' link. To narrow one site only: move those rules to a role of their own given to the other sites',
    ' (--role site linked), and write narrower rules for this one; keep the role site on every link (its',
    ' grants, and the check of which ids it may speak for).',
  ].join('\n');
  const comment = (key: string, text: string[]) => {
    const pair = (doc.contents as YAMLMap).items.find((item) => isScalar(item.key) && item.key.value === key);
    if (pair && isScalar(pair.key)) pair.key.commentBefore = text.join('\n');
  };
  comment('roles', [
    ' Roles: relais identity add <name> --role <role> gives them (several: --role client agent-user).',
    ' grants lift built-in rules: wildcards (# and leading +), responses (others\' answers), requests',
    ' (others\' targeted commands), presence, system (the relais/ actions), restricted (the roots below).',
  ]);
  comment('identities', [
    ' Identities the policy knows: roles added to those of the identities file, grants of their own, and',
    ' "serves": the actions a service may serve (+ is one level; a last # is any levels below). E.g.',
    '   billing:',
    '     serves: [billing/#]',
    '   vm-1:',
    "     serves: ['system/#']          # an agent (relais agent --id vm-1)",
    " relais identity add billing --role service --serves 'billing/#' writes the entry here.",
    ' List an identity with its roles too for relais policy export --mosquitto (Mosquitto knows no roles).',
  ]);
  comment('restricted', [
    ' Roots of actions that a generic ${path} does not reach (built-in restricted-actions): calling,',
    ' answering or serving <root>/... needs a rule whose pattern begins with <root>/, or the grant',
    ' "restricted". The agents\' actions read and remove files and run commands: grant them to a',
    ' role with a rule of its own, e.g. only listing disks:',
    '   - name: support lists disks',
    '     roles: [support]',
    '     publish: [system/disks/list_disks/request/+]',
  ]);
  for (const seq of [doc.getIn(['rules'], true), doc.getIn(['roles'], true), doc.getIn(['identities'], true)]) {
    // Short lists of names on one line, as a person writes them.
    visit(seq as YAMLMap | YAMLSeq, { Seq: (_key, node) => void (node.items.every(isScalar) && node.items.map((item) => String(item.value)).join(', ').length <= 90 && (node.flow = true)) });
  }
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}
