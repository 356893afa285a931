/**
 * `relais bridge line | xpl`: legacy transports on the bus (docs/bridges.md).
 * `line` speaks the PSEC MVP line protocol with one peer, on a Unix socket or a serial device,
 * and is on the bus under that peer's name; `xpl` is an xPL application on a UDP port.
 */
import os from 'node:os';
import { Command, Option } from 'commander';
import { LineBridge, LINE_BRIDGE_DEFAULTS } from '../bridge/line/line-bridge.js';
import { connectSocket, listenSocket, openSerial, type Transport } from '../bridge/line/transports.js';
import { XplBridge, XPL_PORT } from '../bridge/xpl/xpl-bridge.js';
import { addConnectionOptions, connectCli, fail, EXIT, onInterrupt, type GlobalOptions } from './common.js';
import { addLogFormatOption, logFormatOf } from './log-lines.js';
import { commandLogger } from '../logging/log-lines.js';

interface LineOptions extends GlobalOptions {
  logFormat?: string;
  socket?: string;
  listen?: boolean;
  serial?: string;
  baud: string;
  serves?: string[];
  notifications?: string[];
  maxLine: string;
}

interface XplOptions extends GlobalOptions {
  logFormat?: string;
  port: string;
  listenPort: string;
  interface?: string;
  broadcast?: string;
  source?: string;
  standalone: boolean;
}

function positiveInteger(text: string, flag: string, min = 1): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) fail(EXIT.USAGE, `${flag} must be an integer ≥ ${min}, got ${text}`);
  return value;
}

function lineCommand(): Command {
  return addLogFormatOption(addConnectionOptions(new Command('line')))
    .description('PSEC MVP line protocol (JSON lines) with one peer, on the bus under the peer\'s id (--id)')
    .option('--socket <path>', 'Unix socket of the peer (connect to it; with --listen, listen on it)')
    .option('--listen', 'listen on --socket instead of connecting to it')
    .option('--serial <device>', 'serial device of the peer (/dev/hvc2)')
    .option('--baud <rate>', 'serial speed', '115200')
    .option('--serves <action...>', 'actions the peer serves: bus commands for them become commande lines')
    .option('--notifications <filter...>', 'notification filters written to the line (e.g. system/#)')
    .option('--max-line <bytes>', 'longest line read; longer lines are skipped', String(LINE_BRIDGE_DEFAULTS.maxLineBytes))
    .action(async (options: LineOptions) => {
      if ((options.socket === undefined) === (options.serial === undefined)) fail(EXIT.USAGE, 'give exactly one of --socket <path> or --serial <device>');
      if (options.listen && options.serial) fail(EXIT.USAGE, '--listen goes with --socket');
      if (options.id === undefined) fail(EXIT.USAGE, "--id <peer> is required: the bridge is on the bus under the MVP peer's name (its 'source')");
      const maxLineBytes = positiveInteger(options.maxLine, '--max-line');
      const baud = positiveInteger(options.baud, '--baud');
      const logger = commandLogger(options.verbose ? 'debug' : 'info', 'relais-bridge', logFormatOf(options));
      const bus = await connectCli(options, { ephemeral: false, logger, info: { program: 'bridge line' } });
      const bridge = new LineBridge({ bus, serves: options.serves ?? [], notifications: options.notifications ?? [], maxLineBytes, logger });
      let transport: Transport;
      try {
        await bridge.start();
        if (options.serial !== undefined) transport = await openSerial(options.serial, baud, bridge, logger);
        else if (options.listen) transport = await listenSocket(options.socket!, bridge, logger);
        else transport = connectSocket(options.socket!, bridge, logger);
      } catch (error) {
        await bus.close();
        fail(EXIT.ERROR, `the line bridge did not start: ${(error as Error).message}`);
      }
      onInterrupt(async () => {
        await transport.close();
        await bus.close();
        process.exit(EXIT.OK);
      });
      const where = options.serial ?? `${options.listen ? 'listening on' : 'connecting to'} ${options.socket}`;
      process.stdout.write(`relais: line bridge for ${bus.id} ready (${where}); Ctrl-C stops\n`);
    });
}

/** An interface name (eth0) → its IPv4 address and broadcast address; an address stays as is. */
function resolveInterface(name: string | undefined): { address: string; broadcast: string } {
  if (name === undefined) return { address: '0.0.0.0', broadcast: '255.255.255.255' };
  const ipv4 = os.networkInterfaces()[name]?.find((entry) => entry.family === 'IPv4');
  if (!ipv4) return { address: name, broadcast: '255.255.255.255' };
  const toNumber = (dotted: string) => dotted.split('.').reduce((sum, part) => sum * 256 + Number(part), 0);
  const broadcast = (toNumber(ipv4.address) | ~toNumber(ipv4.netmask)) >>> 0;
  return { address: ipv4.address, broadcast: [24, 16, 8, 0].map((shift) => (broadcast >>> shift) & 255).join('.') };
}

function xplCommand(): Command {
  return addLogFormatOption(addConnectionOptions(new Command('xpl')))
    .description('an xPL application: xPL messages become notifications on xpl/<class>/<type>, new devices xpl/device/discovered; the action xpl/send sends')
    .option('--port <port>', 'the xPL port heartbeats and sent messages go to', String(XPL_PORT))
    .option('--listen-port <port>', 'port this application listens on, announced to the hub (0: any free one)', '0')
    .option('--no-standalone', 'never take the xPL port, even when no hub holds it (by default the bridge listens on it itself until a hub appears)')
    .option('--interface <name|address>', 'network interface (or its IPv4 address) to bind and announce (default: all, announcing 127.0.0.1)')
    .addOption(new Option('--broadcast <address>', 'where heartbeats and sent messages go (default: the interface broadcast address, else 255.255.255.255)'))
    .option('--source <vendor-device.instance>', 'xPL source of this application (default relais-bridge.<host>)')
    .action(async (options: XplOptions) => {
      const sendPort = positiveInteger(options.port, '--port');
      const listenPort = positiveInteger(options.listenPort, '--listen-port', 0);
      const { address, broadcast } = resolveInterface(options.interface);
      const instance = os.hostname().toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 16) || 'host';
      const logger = commandLogger(options.verbose ? 'debug' : 'info', 'relais-bridge', logFormatOf(options));
      const sendAddress = options.broadcast ?? broadcast;
      const bridge = new XplBridge({ source: options.source ?? `relais-bridge.${instance}`, bindAddress: address, listenPort, sendAddress, sendPort, standalone: options.standalone, logger });
      try {
        // Before connecting: the presence says which mode the bridge is in.
        await bridge.bind();
      } catch (error) {
        await bridge.close();
        fail(EXIT.ERROR, `the xPL bridge did not start: ${(error as Error).message}`);
      }
      const bus = await connectCli({ ...options, id: options.id ?? `xpl-bridge-${instance}` }, { ephemeral: false, logger, info: { program: 'bridge xpl', xpl: bridge.status } });
      try {
        await bridge.start(bus);
      } catch (error) {
        await bridge.close();
        await bus.close();
        fail(EXIT.ERROR, `the xPL bridge did not start: ${(error as Error).message}`);
      }
      bridge.on('mode', () => process.stdout.write(`relais: xPL bridge now in hub mode: a hub forwards to udp ${address}:${bridge.port}; the xPL port ${sendPort} is the hub's\n`));
      onInterrupt(async () => {
        await bridge.close();
        await bus.close();
        process.exit(EXIT.OK);
      });
      const mode =
        bridge.mode === 'standalone'
          ? `standalone mode (no hub holds the xPL port ${sendPort}: the bridge hears the broadcasts on it itself, and moves to hub mode when a hub appears)`
          : `hub mode (${options.standalone ? `a hub holds the xPL port ${sendPort}` : 'standalone off'}: the hub forwards to this port)`;
      process.stdout.write(`relais: xPL bridge ${bridge.source} listening on udp ${address}:${bridge.port}, sending to ${sendAddress}:${sendPort}, in ${mode}; Ctrl-C stops\n`);
    });
}

export function bridgeCommand(): Command {
  return new Command('bridge').description('legacy transports on the bus: the PSEC MVP line protocol, xPL').addCommand(lineCommand()).addCommand(xplCommand());
}
