/**
 * An xPL application on the bus (docs/bridges.md, "xPL"): it listens on a UDP port,
 * announces it with `hbeat.app` heartbeats so the machine's xPL hub forwards it every message
 * (hub mode); with no hub on the machine it takes the xPL port itself and hears the broadcasts
 * directly (standalone mode, as xPLLib's automatic connection does), and gives the port back to a
 * hub that appears and forwards to it. It publishes each message it receives as a bus notification (`xpl/<class>/<type>`) and each device
 * seen for the first time as `xpl/device/discovered`, and sends the xPL messages asked of it on
 * the action `xpl/send`. The parsing and writing are in message.ts, the discovery in discovery.ts,
 * the copies of one broadcast heard both ways in copies.ts.
 */
import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Bus } from '../../client/index.js';
import { RESERVED_SEGMENTS } from '../../protocol/topics.js';
import { LogLimiter } from '../log-limiter.js';
import { BroadcastCopies, type XplWay } from './copies.js';
import { Discovery, type DiscoveredDevice } from './discovery.js';
import { parseXpl, writeXpl, XplFormatError, XPL_TYPES, type XplMessage, type XplType } from './message.js';

export const XPL_PORT = 3865;
export const XPL_SEND_ACTION = 'xpl/send';
export const XPL_DISCOVERED_CATEGORY = 'xpl/device/discovered';

/**
 * `standalone`: the bridge holds the xPL port and hears the broadcasts itself (no hub on the machine);
 * `hub`: a hub holds the xPL port and forwards to the bridge's own port (`hubConfirmed` once it did).
 */
export type XplMode = 'standalone' | 'hub';

/** What the bridge tells about its mode (its presence info, `relais bridge xpl`'s lines). */
export interface XplStatus {
  mode: XplMode;
  /** The bridge's own port, announced in its heartbeats. */
  port: number;
  /** The xPL port (held by the bridge in standalone mode, by the hub in hub mode). */
  xplPort: number;
  /** A hub has sent the bridge's own heartbeat back: it forwards to the bridge. */
  hubConfirmed: boolean;
}

export interface XplBridgeOptions {
  /** This application's xPL source. Default `relais-bridge.<host>`. */
  source: string;
  /** Address the UDP socket binds; also the `remote-ip` of the heartbeats unless `remoteIp` says otherwise. Default `0.0.0.0`. */
  bindAddress?: string;
  /** Port this application listens on, announced in its heartbeats; 0 picks a free one. Default 0 (a hub forwards to it). */
  listenPort?: number;
  /** Address announced as `remote-ip` (the hub forwards only to local addresses). Default `bindAddress`, or 127.0.0.1 for 0.0.0.0. */
  remoteIp?: string;
  /** Where heartbeats and sent messages go. Default the broadcast address 255.255.255.255. */
  sendAddress?: string;
  /** The xPL port: heartbeats and sent messages go there, and the bridge takes it when it is free (standalone). Default 3865. */
  sendPort?: number;
  /** Take the xPL port when no hub holds it (standalone mode). Default true; false waits for a hub whatever happens. */
  standalone?: boolean;
  /** Heartbeat interval once a hub has echoed ours, in minutes (5 to 30 in the specification). Default 5. */
  heartbeatMinutes?: number;
  /** Heartbeat period while no hub has echoed ours, in ms (the specification: 3 s for 2 minutes, then 30 s). Default 3000. */
  searchHeartbeatMs?: number;
  /** Devices remembered for discovery. Default 10 000. */
  maxDevices?: number;
  logger: Logger;
}

/** A bus category level may not be one of the topic words (protocol §2.1); xPL names never hold `_`, so `_request` is unambiguous. */
function topicLevel(name: string): string {
  const lower = name.toLowerCase();
  return (RESERVED_SEGMENTS as readonly string[]).includes(lower) ? `_${lower}` : lower;
}

/** `x10.basic` → `xpl/x10/basic`; `hbeat.request` → `xpl/hbeat/_request`. */
export function categoryOfSchema(schema: string): string {
  const [schemaClass = '', schemaType = ''] = schema.split('.');
  return `xpl/${topicLevel(schemaClass)}/${topicLevel(schemaType)}`;
}

/** What `xpl/send` takes: the body as [key, value] pairs (order and repeats kept) or an object. */
interface SendRequest {
  type?: XplType;
  target?: string;
  schema: string;
  body: Array<[string, string]> | Record<string, string>;
}

export class XplBridge extends EventEmitter<{ skipped: [problem: string]; hub: []; mode: [mode: XplMode]; message: [message: XplMessage]; discovered: [device: DiscoveredDevice] }> {
  /** The bridge's own port, announced in its heartbeats: where a hub forwards. */
  private readonly socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  /** The xPL port, held in standalone mode only. */
  private xplPortSocket: dgram.Socket | undefined;
  private readonly copies = new BroadcastCopies();
  /** Until when a datagram may still be the copy of one heard the other way (the xPL port was held until shortly before). */
  private copiesUntil = 0;
  private readonly discovery: Discovery;
  private readonly badInput: LogLimiter;
  private readonly settings: Required<Omit<XplBridgeOptions, 'logger' | 'remoteIp'>> & { remoteIp?: string };
  private bus: Bus | undefined;
  private readonly liveStatus: XplStatus;
  private binding: Promise<XplMode> | undefined;
  /** The bridge's own port is bound (its heartbeats can say which it is). */
  private bound = false;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private searchingSince = 0;
  private hubSeen = false;
  private closed = false;

  constructor(private readonly options: XplBridgeOptions) {
    super();
    this.settings = {
      bindAddress: '0.0.0.0',
      listenPort: 0,
      sendAddress: '255.255.255.255',
      sendPort: XPL_PORT,
      standalone: true,
      heartbeatMinutes: 5,
      searchHeartbeatMs: 3000,
      maxDevices: 10_000,
      ...Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)),
    } as XplBridge['settings'];
    this.liveStatus = { mode: 'hub', port: 0, xplPort: this.settings.sendPort, hubConfirmed: false };
    this.discovery = new Discovery(this.settings.maxDevices);
    this.badInput = new LogLimiter(options.logger);
    this.socket.on('message', (datagram, from) => this.receive(datagram, `${from.address}:${from.port}`, this.ownPortIsXplPort ? 'xpl-port' : 'hub'));
    this.socket.on('error', (error) => options.logger.warn({ err: error.message }, 'xPL socket error'));
  }

  /** `--listen-port 3865`: the bridge's own port is the xPL port, standalone for good. */
  private get ownPortIsXplPort(): boolean {
    return this.settings.listenPort === this.settings.sendPort;
  }

  get source(): string {
    return this.settings.source;
  }

  /** The UDP port this application listens on. */
  get port(): number {
    return this.socket.address().port;
  }

  /** True once a hub has sent our own heartbeat back to us. */
  get hubConfirmed(): boolean {
    return this.hubSeen;
  }

  get mode(): XplMode {
    return this.xplPortSocket || this.ownPortIsXplPort ? 'standalone' : 'hub';
  }

  /**
   * The mode, kept up to date in this one object: a caller may hand it to the presence info
   * (`relais bridge xpl` does), which then carries the current mode whenever it is announced again.
   */
  get status(): XplStatus {
    return this.liveStatus;
  }

  private refreshStatus(): void {
    Object.assign(this.liveStatus, { mode: this.mode, port: this.bound ? this.port : 0, hubConfirmed: this.hubSeen });
  }

  get remoteIp(): string {
    return this.settings.remoteIp ?? (this.settings.bindAddress === '0.0.0.0' ? '127.0.0.1' : this.settings.bindAddress);
  }

  /**
   * Binds the bridge's own port, and the xPL port when it is free (standalone mode); says which
   * mode it is in. No bus needed: a caller may put the mode in its presence before connecting.
   */
  bind(): Promise<XplMode> {
    this.binding ??= this.bindSockets();
    return this.binding;
  }

  private async bindSockets(): Promise<XplMode> {
    await bindSocket(this.socket, this.settings.listenPort, this.settings.bindAddress);
    this.bound = true;
    this.socket.setBroadcast(true);
    if (this.settings.standalone && !this.ownPortIsXplPort) await this.takeXplPort();
    this.refreshStatus();
    const { port, xplPort } = this.status;
    if (this.mode === 'standalone') this.options.logger.info({ port, xplPort }, `xPL standalone mode: no hub holds the xPL port ${xplPort}, the bridge listens on it itself`);
    else {
      const why = this.settings.standalone ? `a hub holds the xPL port ${xplPort}` : 'standalone mode is off';
      this.options.logger.info({ port, xplPort }, `xPL hub mode: ${why}; waiting for the hub to forward to port ${port}`);
    }
    return this.mode;
  }

  /** Binds (unless done), serves `xpl/send` on `bus` and starts the heartbeats. */
  async start(bus: Bus): Promise<void> {
    await this.bind();
    this.bus = bus;
    await bus.handle(XPL_SEND_ACTION, (payload: SendRequest) => this.send(payload));
    this.searchingSince = Date.now();
    this.heartbeat();
  }

  /**
   * Standalone mode: the xPL port, shared (SO_REUSEADDR) so that a hub sharing it can start
   * later and take over; a hub holding it alone makes the bind fail, and the bridge stays in hub
   * mode. Bound to all addresses unless the bridge is on loopback: a socket bound to one unicast
   * address does not receive the broadcasts (socket(7)).
   */
  private async takeXplPort(): Promise<void> {
    const loopback = this.settings.bindAddress.startsWith('127.');
    const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    try {
      await bindSocket(socket, this.settings.sendPort, loopback ? this.settings.bindAddress : '0.0.0.0');
    } catch (error) {
      socket.close();
      this.options.logger.debug({ err: (error as Error).message, xplPort: this.settings.sendPort }, 'xPL port not free: hub mode');
      return;
    }
    socket.on('message', (datagram, from) => this.receive(datagram, `${from.address}:${from.port}`, 'xpl-port'));
    socket.on('error', (error) => this.options.logger.warn({ err: error.message }, 'xPL port socket error'));
    this.xplPortSocket = socket;
  }

  /** A hub forwards to us: give the xPL port back to it, hub mode from now on. */
  private leaveStandalone(): void {
    const socket = this.xplPortSocket;
    if (!socket) return;
    this.xplPortSocket = undefined;
    // Broadcasts heard on the xPL port just before may still come forwarded by the hub.
    this.copiesUntil = Date.now() + this.copies.windowMs;
    socket.close();
    this.options.logger.info({ port: this.port, xplPort: this.settings.sendPort }, `xPL hub mode: a hub forwards to port ${this.port}; the bridge gave the xPL port ${this.settings.sendPort} back`);
    // The presence said standalone: a directory must see the mode the bridge is in now.
    this.bus?.updateInfo({ xpl: this.status }).catch((error: Error) => this.options.logger.warn({ err: error.message }, 'xPL mode not announced in the presence'));
    this.emit('mode', 'hub');
  }

  /** Sends an xPL message from this application; resolves with what was sent. */
  async send(request: SendRequest): Promise<{ sent: string; message: XplMessage }> {
    if (typeof request !== 'object' || request === null) throw new XplFormatError('payload must be {type?, target?, schema, body}');
    const body = Array.isArray(request.body) ? request.body : Object.entries(request.body ?? {});
    const message: XplMessage = { type: request.type ?? 'xpl-cmnd', hop: 1, source: this.source, target: request.target ?? '*', schema: String(request.schema), body };
    if (!(XPL_TYPES as readonly string[]).includes(message.type)) throw new XplFormatError(`type '${String(message.type)}' is not xpl-cmnd, xpl-stat or xpl-trig`);
    const sent = writeXpl(message);
    await this.transmit(sent);
    return { sent, message };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.heartbeatTimer);
    // hbeat.end tells the hub to stop forwarding to us.
    if (this.bound) await this.transmit(writeXpl(this.heartbeatMessage('hbeat.end'))).catch(() => {});
    const xplPortSocket = this.xplPortSocket;
    this.xplPortSocket = undefined;
    await Promise.all([this.bound ? this.socket : undefined, xplPortSocket].map((socket) => socket && new Promise<void>((resolve) => socket.close(() => resolve()))));
    // A socket whose bind failed is closed already, or never opened: close it without waiting.
    if (!this.bound) {
      try {
        this.socket.close();
      } catch {
        /* already closed */
      }
    }
  }

  private receive(datagram: Buffer, from: string, way: XplWay): void {
    if (this.closed) return;
    const parsed = parseXpl(datagram);
    if (!parsed.ok) {
      this.badInput.warn({ from, bytes: datagram.length, problem: parsed.problem }, 'xPL datagram skipped');
      this.emit('skipped', parsed.problem);
      return;
    }
    const message = parsed.message;
    const schema = message.schema.toLowerCase();
    if (message.source.toLowerCase() === this.source.toLowerCase()) {
      // Our own heartbeat, sent back to our own port: a hub forwards to us (the specification's
      // hub detection). On the xPL port it is only our broadcast heard by ourselves.
      if (schema === 'hbeat.app' && way === 'hub' && !this.hubSeen) {
        this.hubSeen = true;
        this.options.logger.info({ port: this.port }, 'xPL hub found');
        this.leaveStandalone();
        this.refreshStatus();
        this.emit('hub');
        this.scheduleHeartbeat();
      }
      return;
    }
    if ((this.xplPortSocket || Date.now() < this.copiesUntil) && this.copies.isCopy(datagram.toString('latin1'), way)) return;
    if (message.type === 'xpl-cmnd' && schema === 'hbeat.request') this.heartbeat(false);
    const { bus } = this;
    if (!bus) return;
    try {
      bus.notify(categoryOfSchema(schema), { type: message.type, hop: message.hop, source: message.source, target: message.target, schema: message.schema, body: message.body, from });
      for (const device of this.discovery.observe(message)) {
        bus.notify(XPL_DISCOVERED_CATEGORY, device);
        this.emit('discovered', device);
      }
    } catch (error) {
      this.badInput.warn({ from, err: (error as Error).message }, 'xPL message not published');
    }
    this.emit('message', message);
  }

  private heartbeatMessage(schema: 'hbeat.app' | 'hbeat.end'): XplMessage {
    return {
      type: 'xpl-stat',
      hop: 1,
      source: this.source,
      target: '*',
      schema,
      body: [
        ['interval', String(this.settings.heartbeatMinutes)],
        ['port', String(this.port)],
        ['remote-ip', this.remoteIp],
        ['version', '0.1.0'],
      ],
    };
  }

  private heartbeat(reschedule = true): void {
    if (this.closed) return;
    this.transmit(writeXpl(this.heartbeatMessage('hbeat.app'))).catch((error: Error) => this.options.logger.warn({ err: error.message }, 'xPL heartbeat not sent'));
    if (reschedule) this.scheduleHeartbeat();
  }

  private scheduleHeartbeat(): void {
    clearTimeout(this.heartbeatTimer);
    if (this.closed) return;
    const searching = Date.now() - this.searchingSince < 120_000 ? this.settings.searchHeartbeatMs : 30_000;
    const delay = this.hubSeen ? this.settings.heartbeatMinutes * 60_000 : searching;
    this.heartbeatTimer = setTimeout(() => this.heartbeat(), delay);
    this.heartbeatTimer.unref();
  }

  private transmit(text: string): Promise<void> {
    return new Promise((resolve, reject) => this.socket.send(text, this.settings.sendPort, this.settings.sendAddress, (error) => (error ? reject(error) : resolve())));
  }
}

function bindSocket(socket: dgram.Socket, port: number, address: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, address, () => {
      socket.off('error', reject);
      resolve();
    });
  });
}
