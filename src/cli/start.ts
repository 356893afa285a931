/** `relais start`: the embedded broker and the router beside it (the main job on the default install). */
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { startBrokerService } from '../broker/broker-service.js';
import { startEmbeddedBroker, BrokerStartError, BROKER_DEFAULTS, BROKER_LIMITS, isLoopbackHost, type EmbeddedBrokerOptions } from '../index.js';
import { startRouterThread, type RouterThread } from '../router/thread.js';
import { fail, EXIT, onInterrupt, readFileOption } from './common.js';
import { addLogFormatOption, logFormatOf } from './log-lines.js';
import { commandLogger, type LogFormat } from '../logging/log-lines.js';
import { recordingTo, routerOptions, routerSettings, type RouterSettingsOptions } from './router.js';
import { applyStartConfig, ConfigError, readStartConfig } from './start-config.js';
import { securityFromFlags } from './start-security.js';
import { isCentral, linkPeersOf, openLinks, planSites, siteOptions, type SiteFlags } from './start-sites.js';
import type { SiteLink } from '../sites/link.js';
import { startWebServer, WEB_DEFAULTS, WebStartError, type WebServer } from '../web/server.js';

interface StartOptions extends Omit<RouterSettingsOptions, 'site'>, SiteFlags {
  router: boolean;
  port: string;
  host: string;
  dataDir: string;
  wsPort?: string;
  wsOrigin?: string[];
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tlsPort: string;
  tlsHost?: string;
  wssPort?: string;
  socketMode: string;
  socketGroup?: string;
  config?: string;
  insecure?: boolean;
  maxPacket: string;
  connectTimeout: string;
  maxKeepalive?: string;
  maxBuffered: string;
  stall: string;
  secure?: boolean;
  identities?: string;
  policy?: string;
  web: boolean;
  webPort: string;
  webHost: string;
  webTls?: boolean;
  logFormat?: LogFormat;
}

export function startCommand(): Command {
  return addLogFormatOption(siteOptions(routerOptions(new Command('start'))))
    .description('start the embedded broker (TCP and a Unix socket in the data directory; WebSocket and TLS on request) and the router (request history in the data directory)')
    .option('--no-router', 'the broker alone: no request history (run relais router elsewhere)')
    .option('-p, --port <port>', 'TCP port (0 picks a free one)', String(BROKER_DEFAULTS.port))
    .option('-H, --host <host>', 'address of the network listeners (0.0.0.0 serves the network)', BROKER_DEFAULTS.host)
    .option('-d, --data-dir <dir>', 'data directory (holds the Unix socket and history.db)', process.env.RELAIS_DATA_DIR ?? '.relais')
    .option('--ws-port <port>', 'also serve MQTT over WebSocket on this port (0 picks a free one)')
    .option('--ws-origin <origin...>', "web page origins allowed on the WebSocket port, e.g. https://ui.example ('*': any page; default: none, programs only)")
    .option('--tls-cert <file>', 'also serve MQTT over TLS with this PEM certificate chain (needs --tls-key)')
    .option('--tls-key <file>', 'private key (PEM) of --tls-cert')
    .option('--tls-port <port>', 'TLS port', String(BROKER_DEFAULTS.tlsPort))
    .option('--tls-host <host>', 'address of the TLS listener (default: --host); 0.0.0.0 serves the network')
    .option('--wss-port <port>', 'also serve MQTT over WebSocket over TLS (wss://, browsers beyond this machine) on this port, on --tls-host')
    .option('--tls-ca <file>', 'CA certificate (PEM) whose client certificates are accepted: with security on, the CN is the identity')
    .option('--socket-mode <mode>', 'file mode of the Unix socket: 0600 (this user) or 0660 (and --socket-group)', '0600')
    .option('--socket-group <group>', 'group (name or gid) given the Unix socket')
    .option('-c, --config <file>', 'read the settings from this file (relais init writes one); flags given here win')
    .option('--insecure', 'allow a listener beyond loopback without TLS and authentication (anyone who reaches it can command the bus)')
    .option('--max-packet <bytes>', 'largest MQTT packet a client may send; a bigger one closes its connection at its header', String(BROKER_LIMITS.maxPacketBytes))
    .option('--connect-timeout <ms>', 'close a connection that sends no CONNECT within this time', String(BROKER_LIMITS.connectTimeoutMs))
    .option('--max-keepalive <seconds>', 'refuse (CONNACK code 2) a CONNECT whose keep-alive is 0 or above this; default: any keep-alive, 0 included, as MQTT 3.1.1 allows')
    .option('--max-buffered <bytes>', 'cut off a client with more than this many bytes waiting to be sent to it', String(BROKER_LIMITS.maxBufferedBytes))
    .option('--stall <ms>', 'cut off a client whose connection does not drain for this long', String(BROKER_LIMITS.stallMs))
    .option('--secure', 'require an identity and token on every network connection and enforce the policy: <data-dir>/identities.json (relais identity add) and <data-dir>/policy.json (the default policy while absent)')
    .option('--identities <file>', 'like --secure, with this identities file')
    .option('--policy <file>', 'like --secure, with this policy file (JSON, or YAML by its extension; re-read when it changes, a bad new one is refused and the old one kept)')
    .option('--web-port <port>', 'port of the web page, MQTT over WebSocket at /mqtt and the HTTP API (0 picks a free one; RELAIS_WEB_PORT)', process.env.RELAIS_WEB_PORT ?? String(WEB_DEFAULTS.port))
    .option('--web-host <host>', 'address of the web server (beyond loopback it needs security, or --insecure)', WEB_DEFAULTS.host)
    .option('--web-tls', 'serve the web page and HTTP API over HTTPS (TLS 1.3) with --tls-cert and --tls-key; with --tls-ca, client certificates name the caller')
    .option('--no-web', 'no web page and no HTTP API')
    .action(async (given: StartOptions, command: Command) => {
      const options = withConfig(given, command);
      refuseExposure(options);
      const security = securityFromFlags(options);
      const sites = planSites(options);
      // A central keeps its identities to itself; a site lets its central speak for the operators who command it (docs/security.md "Sites").
      if (security) security.options.identitiesStayLocal = isCentral(sites);
      // The HTTP API asks the router on behalf of its callers (protocol §11.2): nobody else may be it.
      if (security && options.web) security.options.inProcessOnly = [WEB_DEFAULTS.id];
      const brokerOptions: EmbeddedBrokerOptions = {
        ...(security && { security: security.options }),
        host: options.host,
        port: portOption(options.port, '--port'),
        unixPath: path.resolve(options.dataDir, 'relais.sock'),
        unixMode: socketModeOption(options.socketMode),
        ...(options.socketGroup !== undefined && { unixGroup: options.socketGroup }),
        ...(options.wsPort !== undefined && { wsPort: portOption(options.wsPort, '--ws-port'), wsOrigins: options.wsOrigin ?? [] }),
        ...tlsOption(options),
        // With its router on the way, what is published before it connects is kept for it too (protocol §11.1).
        routerJournal: { fromStart: options.router },
        limits: {
          maxPacketBytes: positiveOption(options.maxPacket, '--max-packet'),
          connectTimeoutMs: positiveOption(options.connectTimeout, '--connect-timeout'),
          ...(options.maxKeepalive !== undefined && { maxKeepaliveSeconds: positiveOption(options.maxKeepalive, '--max-keepalive') }),
          maxBufferedBytes: positiveOption(options.maxBuffered, '--max-buffered'),
          stallMs: positiveOption(options.stall, '--stall'),
        },
      };
      const webPort = options.web ? portOption(options.webPort, '--web-port') : undefined;
      // One format for every part's lines: the broker's, its service's, the router's (its thread) and the web server's.
      const logFormat = logFormatOf(options);
      const logLevel = 'info';
      const brokerLogger = commandLogger(logLevel, 'relais-broker', logFormat);
      brokerOptions.log = (line) => brokerLogger.warn(line);
      const settings = options.router ? routerSettings(options, security !== undefined) : undefined;
      // The history holds payloads and the socket commands the bus: what start creates is this
      // user's (umask 077); with a 0660 socket, the group may only traverse to it (0710).
      process.umask(0o077);
      fs.mkdirSync(options.dataDir, { recursive: true, mode: options.socketMode === '0660' ? 0o710 : 0o700 });
      try {
        const broker = await startEmbeddedBroker(brokerOptions);
        const brokerService = await startBrokerService(broker, { logger: commandLogger(logLevel, 'relais-broker', logFormat) }); // relais/broker/stats/get (protocol §11.9)
        let router: RouterThread | undefined;
        let web: WebServer | undefined;
        let links: SiteLink[] = [];
        // Ctrl-C is wired before the announcement: whoever reads "listening" may signal at once,
        // while the router and the web server still start; their failure then is not the exit code.
        let stopping = false;
        onInterrupt(async (signal) => {
          stopping = true;
          process.stdout.write(`relais: ${signal} received, stopping\n`);
          // Each link says `down` on both brokers first (protocol §13.2); nothing else is cleared.
          await Promise.all(links.map((link) => link.stop()));
          await web?.close();
          await router?.close();
          security?.stop();
          await brokerService.close();
          await broker.close();
          process.stdout.write('relais: stopped\n');
          process.exit(EXIT.OK);
        });
        const urls = [broker.url, broker.unixUrl, broker.wsUrl, broker.tlsUrl, broker.wssUrl].filter((url) => url !== undefined);
        process.stdout.write(`relais: broker listening on ${urls.join(' and ')}\n`);
        if (settings) {
          // In a worker thread (its own core), reaching the broker without a TCP hop (protocol §11).
          try {
            // With security on, the history is private: the router reads the identities and policy the broker enforces (protocol §11.2).
            const access = security && { identities: security.identitiesFile, ...(security.policyFile !== undefined && { policy: security.policyFile }), delegates: options.web ? [WEB_DEFAULTS.id] : [], linkPeers: linkPeersOf(sites) };
            router = await startRouterThread(broker, { ...settings, persistentSession: false, logLevel, logFormat, ...(access && { access }) });
          } catch (error) {
            if (stopping) return;
            await brokerService.close();
            await broker.close();
            fail(EXIT.ERROR, `the router did not start: ${(error as Error).message} (--no-router runs the broker alone)`);
          }
          if (stopping) return;
          process.stdout.write(`relais: router recording the request history to ${recordingTo(settings)}\n`);
        }
        if (webPort !== undefined) {
          try {
            const webTls = options.webTls ? brokerOptions.tls : undefined;
            web = await startWebServer({ broker, host: options.webHost, port: webPort, logger: commandLogger(logLevel, 'relais-web', logFormat), ...(security && { security: security.options }), ...(options.insecure && { insecure: true }), ...(webTls && { tls: { cert: webTls.cert, key: webTls.key, ...(webTls.ca !== undefined && { ca: webTls.ca }) } }) });
          } catch (error) {
            if (stopping) return;
            if (!(error instanceof WebStartError)) throw error;
            await router?.close();
            // Its client first: closed by the broker, it would warn "connection lost" before the reason.
            await brokerService.close();
            await broker.close();
            fail(error.addressInUse ? EXIT.ERROR : EXIT.USAGE, `${error.message}${error.addressInUse ? ': choose another port with --web-port <port> (--web-port 0 picks a free one), or --no-web' : ''}`);
          }
          if (stopping) return;
          process.stdout.write(`relais: web page and HTTP API on ${web.url} (MQTT over WebSocket at ${web.url.replace(/^http/, 'ws')}mqtt)\n`);
        }
        // protocol §13.1: the links start after the local services; an unreachable other end is retried, never fatal.
        links = openLinks(broker, sites);
        process.stdout.write(`relais: clients connect with --broker ${broker.url ?? broker.unixUrl} (or RELAIS_BROKER); Ctrl-C stops\n`);
        if (broker.wsUrl && options.wsOrigin?.includes('*')) {
          process.stderr.write('relais: warning: --ws-origin * lets any web page the users of this machine open send commands and read every message\n');
        }
        if (security) {
          process.stdout.write(`relais: security on: identities ${security.identitiesFile}, policy ${security.policyFile ?? `(the default policy until ${security.watchedPolicy} is written)`}; clients connect with username <identity>, password <token>, client id <identity> or a session <identity>~<session>${options.tlsCa ? ', or over TLS with a certificate of the CA' : ''} (SIGHUP reloads the policy)\n`);
        } else {
          process.on('SIGHUP', () => process.stdout.write('relais: SIGHUP: security is off, no policy to reload\n'));
          if (options.insecure) process.stderr.write('relais: warning: --insecure: listening beyond loopback without TLS and authentication: anyone who can reach it can send commands and read every message\n');
        }
      } catch (error) {
        if (error instanceof BrokerStartError) fail(EXIT.ERROR, startFailure(error));
        throw error;
      }
    });
}

/** The option that moves each listener of the broker elsewhere. */
const LISTENER_FLAGS: Record<string, string> = { TCP: '--port', WebSocket: '--ws-port', TLS: '--tls-port', 'WebSocket over TLS': '--wss-port', 'Unix socket': '--data-dir' };

/** Why the broker did not start; for a taken address, the option that picks another one. */
function startFailure(error: BrokerStartError): string {
  const flag = error.listener === undefined ? undefined : LISTENER_FLAGS[error.listener];
  if (!error.addressInUse || flag === undefined) return error.message;
  const taken = error.message.replace(/ is already in use:.*$/s, '');
  if (flag === '--data-dir') return `${taken} is already in use: another relais start runs with this data directory (stop it, or give another --data-dir)`;
  return `${taken} is already in use, by another broker or program: choose another port with ${flag} <port> (${flag} 0 picks a free one), or stop what holds it`;
}

function portOption(text: string, flag: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(EXIT.USAGE, `${flag} must be a port number, got ${text}`);
  return port;
}

function positiveOption(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0) fail(EXIT.USAGE, `${flag} must be a positive whole number, got ${text}`);
  return value;
}

function tlsOption(options: StartOptions): Pick<EmbeddedBrokerOptions, 'tls'> {
  if (options.tlsCert === undefined && options.tlsKey === undefined) {
    const needing = options.tlsCa !== undefined ? '--tls-ca' : options.wssPort !== undefined ? '--wss-port' : options.webTls ? '--web-tls' : undefined;
    if (needing) fail(EXIT.USAGE, `${needing} needs the TLS certificate: --tls-cert and --tls-key`);
    return {};
  }
  if (options.tlsCert === undefined || options.tlsKey === undefined) fail(EXIT.USAGE, '--tls-cert and --tls-key go together');
  return {
    tls: {
      cert: readFileOption(options.tlsCert, '--tls-cert'),
      key: readFileOption(options.tlsKey, '--tls-key'),
      ...(options.tlsCa !== undefined && { ca: readFileOption(options.tlsCa, '--tls-ca') }),
      port: portOption(options.tlsPort, '--tls-port'),
      ...(options.tlsHost !== undefined && { host: options.tlsHost }),
      ...(options.wssPort !== undefined && { wsPort: portOption(options.wssPort, '--wss-port') }),
    },
  };
}

function socketModeOption(text: string): number {
  if (text !== '0600' && text !== '0660') fail(EXIT.USAGE, `--socket-mode must be 0600 or 0660, got ${text}`);
  return parseInt(text, 8);
}

function withConfig(options: StartOptions, command: Command): StartOptions {
  if (options.config === undefined) return options;
  try {
    return applyStartConfig(command, options, readStartConfig(path.resolve(options.config)));
  } catch (error) {
    if (error instanceof ConfigError) fail(EXIT.USAGE, `invalid configuration: ${error.message}`);
    throw error;
  }
}

/**
 * docs/security.md "Listeners": nothing listens beyond loopback without TLS and authentication, unless the
 * operator says --insecure. The plain TCP and WebSocket listeners have no TLS, so they stay on
 * loopback; the TLS listener may leave it once identities are required.
 */
function refuseExposure(options: StartOptions): void {
  if (options.insecure) return;
  const secured = options.secure || options.identities !== undefined || options.policy !== undefined;
  const exposed: string[] = [];
  if (!isLoopbackHost(options.host)) exposed.push(`${options.host}:${options.port} (plain TCP${options.wsPort !== undefined ? ' and WebSocket' : ''}, no TLS)`);
  const tlsHost = options.tlsHost ?? options.host;
  if (options.tlsCert !== undefined && !isLoopbackHost(tlsHost) && !secured) exposed.push(`${tlsHost}:${options.tlsPort}${options.wssPort !== undefined ? ` and :${options.wssPort}` : ''} (TLS without authentication)`);
  if (exposed.length === 0) return;
  fail(
    EXIT.USAGE,
    `refusing to listen on ${exposed.join(' and ')}: anyone who can reach it could send commands and read every message.\n` +
      '  For a secure set-up: relais init --dir <dir>, then relais start --config <dir>/relais.json (TLS 1.3 and identities on the network, plain TCP on loopback).\n' +
      '  To take the risk anyway: add --insecure.',
  );
}

