/**
 * The child side of the peers benchmark: every contender file calls `runPeer` with its two
 * roles, and this file does the rest (arguments, the line protocol of protocol.ts, closing
 * when stdin ends so that no child outlives the benchmark).
 *
 *   node --import tsx bench/peers/<contender>.ts requester|handler --url URL [--id ID] [--peer ID] [--qos 0|1] [--action A]
 */
import { parseArgs } from 'node:util';
import { Driver, type Send } from './drive.js';
import type { Command, Role } from './protocol.js';
import { reply, serveCommands } from './child-io.js';

export interface PeerArgs {
  role: Role;
  /** Broker URL (or, for a requester of the TCP floor, the echo server's). */
  url: string;
  /** A name for this process, unique in the run (client ids, node ids). */
  id: string;
  qos: 0 | 1;
  /** The other side's id, for a requester that addresses its handler by name (raw MQTT). */
  peer: string;
  /** Relais only: a folder with `<id>.key` and `signing-keys.json`, to sign and verify (bench/scenarios/signing.ts). */
  signing: string;
  /** Relais only: a folder with `<id>.sealing.key` and `sealing-keys.json`, to seal requests both ways (bench/scenarios/sealing.ts). */
  sealing: string;
  /** Relais only: the action served and requested (default bench/echo); contenders sharing one bus each need their own (bench/scenarios/python.ts). */
  action: string;
}

export interface RequesterSide {
  send: Send;
  close(): Promise<void>;
}

export interface HandlerSide {
  served(): number;
  /** Set when the handler is its own server: where the requester connects. */
  url?: string;
  close(): Promise<void>;
}

export interface PeerRoles {
  requester(args: PeerArgs): Promise<RequesterSide>;
  handler(args: PeerArgs): Promise<HandlerSide>;
}

/** Closing must end, even when a library hangs on it. */
const CLOSE_MS = 3000;

export function peerArgs(argv = process.argv.slice(2)): PeerArgs {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { url: { type: 'string', default: '' }, id: { type: 'string', default: `peer-${process.pid}` }, qos: { type: 'string', default: '1' }, peer: { type: 'string', default: '' }, signing: { type: 'string', default: '' }, sealing: { type: 'string', default: '' }, action: { type: 'string', default: 'bench/echo' } },
  });
  const role = positionals[0];
  if (role !== 'requester' && role !== 'handler') throw new Error(`the first argument must be requester or handler, not ${role}`);
  const qos = Number(values.qos);
  if (qos !== 0 && qos !== 1) throw new Error(`--qos must be 0 or 1, not ${values.qos}`);
  return { role, url: values.url ?? '', id: values.id ?? `peer-${process.pid}`, qos, peer: values.peer ?? '', signing: values.signing ?? '', sealing: values.sealing ?? '', action: values.action ?? 'bench/echo' };
}

export async function runPeer(roles: PeerRoles): Promise<void> {
  let args: PeerArgs;
  try {
    args = peerArgs();
  } catch (error) {
    reply({ peer: 'error', message: (error as Error).message });
    process.exit(2);
  }
  let side: RequesterSide | HandlerSide;
  try {
    side = args.role === 'requester' ? await roles.requester(args) : await roles.handler(args);
  } catch (error) {
    reply({ peer: 'error', message: `start failed: ${(error as Error).stack ?? error}` });
    process.exit(1);
  }
  const driver = args.role === 'requester' ? new Driver((side as RequesterSide).send) : undefined;
  serveCommands(
    { peer: 'ready', pid: process.pid, ...('url' in side && side.url && { url: side.url }) },
    (command) => execute(command, side, driver),
    () => shutdown(side, driver),
  );
}

async function execute(command: Command, side: RequesterSide | HandlerSide, driver: Driver | undefined): Promise<void> {
  try {
    if (command.cmd === 'count') {
      if (!('served' in side)) throw new Error('count is a handler command');
      reply({ peer: 'done', cmd: 'count', served: side.served() });
      return;
    }
    if (!driver) throw new Error(`${command.cmd} is a requester command`);
    if (command.cmd === 'warmup') reply(await driver.warmup(command.count, command.capMs, command.inFlight, command.loadMs));
    else if (command.cmd === 'sequential') reply(await driver.sequential(command.count, command.capMs));
    else if (command.cmd === 'load') reply(await driver.load(command.inFlight, command.durationMs));
    else throw new Error(`unknown command ${(command as { cmd: string }).cmd}`);
  } catch (error) {
    reply({ peer: 'error', cmd: command.cmd, message: (error as Error).message, ...(driver && { totals: { ...driver.totals } }) });
  }
}

async function shutdown(side: RequesterSide | HandlerSide, driver: Driver | undefined): Promise<void> {
  const forced = setTimeout(() => process.exit(0), CLOSE_MS);
  forced.unref();
  try {
    await side.close();
  } catch {
    // closing is best effort; the process ends below either way
  }
  reply({ peer: 'result', ...(driver && { totals: { ...driver.totals } }), ...('served' in side && { served: side.served() }) });
  clearTimeout(forced);
  process.exit(0);
}
