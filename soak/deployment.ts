/**
 * The deployment the soak runs, every part a real process as on a real host:
 *
 * - `relais init` (a CA, the broker's certificate, the admin identity, the default policy), then
 *   `relais start --config` with security on: the embedded broker, the router recording the
 *   history into a data folder on its own small disk, the web page and HTTP API;
 * - one identity per role of the default policy, each with the least it needs (docs/security.md
 *   "What each role may run"): handlers are `service` serving `soak/work` and `soak/fail`, the
 *   agent `service` serving `system/#` (its actions); the requesters, the follower and the web
 *   client are `client`, the file transfers `client` and `agent-user` (they call the agent's
 *   actions); the policy probe `observer` and `client`; the checks read the whole history as
 *   `admin`;
 * - every client reaches the broker (or the web server) through a proxy of its own, so a
 *   network fault hits one link as on a real network;
 * - handlers, requesters, the follower and the web client are the programs of soak/actors/;
 *   the agent is `relais agent --config`, the transfers `relais send` and `relais fetch`.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { connect, type Bus } from '../src/index.js';
import { IdentityStore } from '../src/security/identities.js';
import { setServes } from '../src/security/policy-file.js';
import { prepareHistoryDisk, type HistoryDisk } from './history-disk.js';
import { actorCommand, RELAIS_BIN } from './paths.js';
import type { PolicyProbe } from './policy-fault.js';
import { ManagedProcess } from './supervisor.js';
import { startFaultyProxy, type FaultyProxy } from './tcp-proxy.js';
import { TransferLoop } from './transfers.js';
import { HANDLER_ACTIONS } from './workload.js';
import pino from 'pino';

export interface DeploymentOptions {
  runDir: string;
  seed: number;
  handlers: number;
  requesters: number;
  /** Size of the history disk (tmpfs), MiB. */
  historyDiskMb: number;
  concurrency: number;
}

export interface Deployment {
  broker: ManagedProcess;
  handlers: ManagedProcess[];
  agent: ManagedProcess;
  requesters: ManagedProcess[];
  follower: ManagedProcess;
  webClient: ManagedProcess;
  /** Every long-lived process, by name. */
  processes: Map<string, ManagedProcess>;
  proxies: Map<string, FaultyProxy>;
  disk: HistoryDisk;
  transfers: TransferLoop;
  policyFile: string;
  journals: { handlers: string[]; requesters: string[]; follower: string; webClient: string; transfers: string };
  /** Connects the checker as `admin`, straight to the broker. */
  connectAdmin(): Promise<Bus>;
  probePolicy(): Promise<PolicyProbe>;
  /** Stops every process (thawed first), every proxy, and unmounts the disk. */
  teardown(): Promise<void>;
}

const run = promisify(execFile);

/** Starts it all; on a failure, stops what was started and unmounts the disk before rethrowing. */
export async function deploy(options: DeploymentOptions): Promise<Deployment> {
  const started: { processes: ManagedProcess[]; proxies: FaultyProxy[]; disk?: HistoryDisk } = { processes: [], proxies: [] };
  try {
    return await deployParts(options, started);
  } catch (error) {
    await Promise.all(started.processes.map((process) => process.stop(2000)));
    await Promise.all(started.proxies.map((proxy) => proxy.close()));
    started.disk?.close();
    throw error;
  }
}

async function deployParts(options: DeploymentOptions, started: { processes: ManagedProcess[]; proxies: FaultyProxy[]; disk?: HistoryDisk }): Promise<Deployment> {
  const { runDir } = options;
  const dirs = { config: path.join(runDir, 'config'), data: path.join(runDir, 'data'), logs: path.join(runDir, 'logs'), journals: path.join(runDir, 'journals'), agentDisk: path.join(runDir, 'agent-disk'), files: path.join(runDir, 'files') };
  for (const dir of [dirs.logs, dirs.journals, dirs.agentDisk]) fs.mkdirSync(dir, { recursive: true });
  const disk = prepareHistoryDisk(dirs.data, options.historyDiskMb);
  started.disk = disk;
  const [mqttPort, tlsPort, webPort] = [await freePort(), await freePort(), await freePort()];

  // relais init, as an operator would run it, then its config pointed at this run's ports and disk.
  const init = await run(process.execPath, [RELAIS_BIN, 'init', '--dir', dirs.config, '--tls-host', '127.0.0.1', '--tls-port', String(tlsPort)]);
  const adminToken = /administrator token[^\n]*\n(\S+)/.exec(init.stdout)?.[1];
  if (!adminToken) throw new Error(`relais init printed no administrator token:\n${init.stdout}`);
  const configFile = path.join(dirs.config, 'relais.json');
  const config = JSON.parse(fs.readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  Object.assign(config, { dataDir: dirs.data, port: mqttPort, web: { host: '127.0.0.1', port: webPort, tls: false } });
  fs.writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`);
  // The policy file relais init wrote (its name is in the config), relative to the config's folder.
  const policyFile = path.resolve(dirs.config, String(config.policy));

  // What `relais identity add <name> --role <role...> [--serves <action...>]` does, for each (the
  // CLI's own functions: a CLI start per identity would take a minute on a busy machine).
  const identities = new IdentityStore(path.join(dirs.config, 'identities.json'));
  const tokens = new Map<string, string>([['admin', adminToken]]);
  const identity = async (name: string, roles: string[], serves?: string[]) => {
    tokens.set(name, (await identities.add(name, roles)).token);
    if (serves) setServes(policyFile, name, serves);
  };
  const handlerNames = Array.from({ length: options.handlers }, (_, i) => `handler-${i + 1}`);
  const requesterNames = Array.from({ length: options.requesters }, (_, i) => `requester-${i + 1}`);
  for (const name of handlerNames) await identity(name, ['service'], [...HANDLER_ACTIONS]);
  await identity('agent-1', ['service'], ['system/#']);
  for (const name of [...requesterNames, 'follower', 'web-client']) await identity(name, ['client']);
  await identity('transfer', ['client', 'agent-user']);
  await identity('probe-observer', ['observer']);
  await identity('probe-client', ['client']);

  const logFile = (name: string) => path.join(dirs.logs, `${name}.log`);
  const journal = (name: string) => path.join(dirs.journals, `${name}.jsonl`);
  const processes = new Map<string, ManagedProcess>();
  const managed = (process: ManagedProcess) => {
    processes.set(process.name, process);
    started.processes.push(process);
    return process;
  };

  const broker = managed(new ManagedProcess({ name: 'relais-start', command: process.execPath, args: [RELAIS_BIN, 'start', '--config', configFile], ready: /clients connect with/, logFile: logFile('relais-start') }));
  await broker.start();

  const links = [...handlerNames, 'agent-1', ...requesterNames, 'follower', 'transfer'];
  const proxies = new Map<string, FaultyProxy>();
  for (const [link, port] of [...links.map((link) => [link, mqttPort] as const), ['web-client', webPort] as const]) {
    const proxy = await startFaultyProxy(link, port);
    proxies.set(link, proxy);
    started.proxies.push(proxy);
  }
  const brokerUrl = (link: string) => `mqtt://127.0.0.1:${proxies.get(link)!.port}`;
  const settings = (name: string, extra: object = {}) => ({ id: name, token: tokens.get(name)!, broker: brokerUrl(name), journal: journal(name), seed: options.seed, ...extra });
  const actor = (name: string, program: string, extra: object = {}, ready = /^READY/, env: NodeJS.ProcessEnv = {}) => {
    const command = actorCommand(program, settings(name, extra));
    return managed(new ManagedProcess({ name, command: process.execPath, args: command.args, env: { ...command.env, ...env }, ready, logFile: logFile(name) }));
  };

  const handlers = handlerNames.map((name) => actor(name, 'handler'));
  const agentConfig = path.join(runDir, 'agent.json');
  fs.writeFileSync(agentConfig, JSON.stringify({ services: { disks: { disks: { data: { path: dirs.agentDisk } } }, transfer: {} } }, null, 2));
  const clientEnv = (name: string) => ({ ...process.env, RELAIS_BROKER: brokerUrl(name), RELAIS_ID: name, RELAIS_TOKEN: tokens.get(name)! });
  const agent = managed(new ManagedProcess({ name: 'agent-1', command: process.execPath, args: [RELAIS_BIN, 'agent', '--config', agentConfig], env: clientEnv('agent-1'), ready: /agent agent-1 serving/, logFile: logFile('agent-1') }));
  const follower = actor('follower', 'follower');
  await Promise.all([...handlers, agent, follower].map((process) => process.start()));

  // At info, a requester logs each request it moves to another handler and each handler it suspects (protocol §4.7): the evidence of a double run.
  const requesters = requesterNames.map((name) => actor(name, 'requester', { handlers: handlerNames, concurrency: options.concurrency, noteEveryMs: 1000, historyEveryMs: 4000 }, /^READY/, { RELAIS_LOG_LEVEL: process.env.RELAIS_LOG_LEVEL ?? 'info' }));
  const webClient = actor('web-client', 'web-client', { web: `http://127.0.0.1:${proxies.get('web-client')!.port}`, historyEveryMs: 5000 });
  await Promise.all([...requesters, webClient].map((process) => process.start()));

  const transfers = new TransferLoop({ seed: options.seed, agent: 'agent-1', disk: 'data', diskPath: dirs.agentDisk, workDir: dirs.files, env: clientEnv('transfer'), journal: journal('transfers'), boundMs: 6 * 60_000 });
  const web = `http://127.0.0.1:${webPort}`;

  return {
    broker,
    handlers,
    agent,
    requesters,
    follower,
    webClient,
    processes,
    proxies,
    disk,
    transfers,
    policyFile,
    journals: { handlers: handlerNames.map(journal), requesters: requesterNames.map(journal), follower: journal('follower'), webClient: journal('web-client'), transfers: journal('transfers') },
    connectAdmin: () => connect({ id: 'admin', broker: `mqtt://127.0.0.1:${mqttPort}`, username: 'admin', password: adminToken, logger: pino({ level: 'silent' }), timeout: 30_000 }),
    async probePolicy() {
      const status = async (name: string) => {
        try {
          const response = await fetch(`${web}/api/actions/soak/probe`, { method: 'POST', headers: { authorization: `Bearer ${name}:${tokens.get(name)}`, 'content-type': 'application/json' }, body: '{}', signal: AbortSignal.timeout(15_000) });
          await response.arrayBuffer();
          return response.status;
        } catch (error) {
          return `${(error as Error).name}: ${(error as Error).message}`;
        }
      };
      return { observer: await status('probe-observer'), client: await status('probe-client') };
    },
    async teardown() {
      for (const process of processes.values()) if (process.frozen) process.thaw();
      await Promise.all([...processes.values()].filter((process) => process !== broker).map((process) => process.stop()));
      await broker.stop();
      await Promise.all([...proxies.values()].map((proxy) => proxy.close()));
      await Promise.all([...processes.values()].map((process) => process.closeLog()));
      disk.free();
      disk.close();
    },
  };
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
