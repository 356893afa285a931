/**
 * An xPL application on the bus (docs/bridges.md, "xPL"): it listens on a UDP port,
 * announces it with `hbeat.app` heartbeats so the machine's xPL hub forwards it every message,
 * publishes each message it receives as a bus notification (`xpl/<class>/<type>`) and each device
 * seen for the first time as `xpl/device/discovered`, and sends the xPL messages asked of it on
 * the action `xpl/send`. The parsing and writing are in message.ts, the discovery in discovery.ts.
 */
import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Bus } from '../../client/index.js';
import { RESERVED_SEGMENTS } from '../../protocol/topics.js';
import { LogLimiter } from '../log-limiter.js';
import { Discovery, type DiscoveredDevice } from './discovery.js';
import { parseXpl, writeXpl, XplFormatError, XPL_TYPES, type XplMessage, type XplType } from './message.js';

export const XPL_PORT = 3865;
export const XPL_SEND_ACTION = 'xpl/send';
export const XPL_DISCOVERED_CATEGORY = 'xpl/device/discovered';

export interface XplBridgeOptions {
  bus: Bus;
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
  /** The xPL port there. Default 3865. */
  sendPort?: number;
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

export class XplBridge extends EventEmitter<{ skipped: [problem: string]; hub: []; message: [message: XplMessage]; discovered: [device: DiscoveredDevice] }> {
  private readonly socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  private readonly discovery: Discovery;
  private readonly badInput: LogLimiter;
  private readonly settings: Required<Omit<XplBridgeOptions, 'bus' | 'logger' | 'remoteIp'>> & { remoteIp?: string };
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
      heartbeatMinutes: 5,
      searchHeartbeatMs: 3000,
      maxDevices: 10_000,
      ...Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)),
    } as XplBridge['settings'];
    this.discovery = new Discovery(this.settings.maxDevices);
    this.badInput = new LogLimiter(options.logger);
    this.socket.on('message', (datagram, from) => this.receive(datagram, `${from.address}:${from.port}`));
    this.socket.on('error', (error) => options.logger.warn({ err: error.message }, 'xPL socket error'));
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

  get remoteIp(): string {
    return this.settings.remoteIp ?? (this.settings.bindAddress === '0.0.0.0' ? '127.0.0.1' : this.settings.bindAddress);
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.socket.once('error', reject);
      this.socket.bind(this.settings.listenPort, this.settings.bindAddress, () => {
        this.socket.off('error', reject);
        resolve();
      });
    });
    this.socket.setBroadcast(true);
    await this.options.bus.handle(XPL_SEND_ACTION, (payload: SendRequest) => this.send(payload));
    this.searchingSince = Date.now();
    this.heartbeat();
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
    await this.transmit(writeXpl(this.heartbeatMessage('hbeat.end'))).catch(() => {});
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  private receive(datagram: Buffer, from: string): void {
    const parsed = parseXpl(datagram);
    if (!parsed.ok) {
      this.badInput.warn({ from, bytes: datagram.length, problem: parsed.problem }, 'xPL datagram skipped');
      this.emit('skipped', parsed.problem);
      return;
    }
    const message = parsed.message;
    const schema = message.schema.toLowerCase();
    if (message.source.toLowerCase() === this.source.toLowerCase()) {
      // Our own heartbeat, sent back: a hub forwards to us (the specification's hub detection).
      if (schema === 'hbeat.app' && !this.hubSeen) {
        this.hubSeen = true;
        this.options.logger.info({ port: this.port }, 'xPL hub found');
        this.emit('hub');
        this.scheduleHeartbeat();
      }
      return;
    }
    if (message.type === 'xpl-cmnd' && schema === 'hbeat.request') this.heartbeat(false);
    const { bus } = this.options;
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
