/** `relais start`: the embedded broker and the router beside it (the main job on the default install). */
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import type { BrokerSecurity } from '../broker/enforce.js';
import { startBrokerService } from '../broker/broker-service.js';
import { defaultPolicy } from '../security/default-policy.js';
import { IdentityError, IdentityStore } from '../security/identities.js';
import { loadPolicy } from '../security/policy-file.js';
import { PolicyError, type Policy } from '../security/policy.js';
import { startEmbeddedBroker, BrokerStartError, BROKER_DEFAULTS, BROKER_LIMITS, isLoopbackHost, type EmbeddedBrokerOptions } from '../index.js';
import { startRouterThread, type RouterThread } from '../router/thread.js';
import { fail, EXIT, onInterrupt, readFileOption } from './common.js';
import { routerOptions, routerSettings, type RouterSettingsOptions } from './router.js';

interface StartOptions extends RouterSettingsOptions {
  router: boolean;
  port: string;
  host: string;
  dataDir: string;
  wsPort?: string;
  wsOrigin?: string[];
  tlsCert?: string;
  tlsKey?: string;
  tlsPort: string;
  maxPacket: string;
  connectTimeout: string;
  maxKeepalive: string;
  maxBuffered: string;
  stall: string;
  secure?: boolean;
  identities?: string;
  policy?: string;
}

export function startCommand(): Command {
  return routerOptions(new Command('start'))
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
    .option('--max-packet <bytes>', 'largest MQTT packet a client may send; a bigger one closes its connection at its header', String(BROKER_LIMITS.maxPacketBytes))
    .option('--connect-timeout <ms>', 'close a connection that sends no CONNECT within this time', String(BROKER_LIMITS.connectTimeoutMs))
    .option('--max-keepalive <seconds>', 'refuse a CONNECT whose keep-alive is 0 or above this', String(BROKER_LIMITS.maxKeepaliveSeconds))
    .option('--max-buffered <bytes>', 'cut off a client with more than this many bytes waiting to be sent to it', String(BROKER_LIMITS.maxBufferedBytes))
    .option('--stall <ms>', 'cut off a client whose connection does not drain for this long', String(BROKER_LIMITS.stallMs))
    .option('--secure', 'require an identity and token on every network connection and enforce the policy: <data-dir>/identities.json (relais identity add) and <data-dir>/policy.json (the default policy when absent)')
    .option('--identities <file>', 'like --secure, with this identities file')
    .option('--policy <file>', 'like --secure, with this policy file (JSON; re-read when it changes, a bad new one is refused and the old one kept)')
    .action(async (options: StartOptions) => {
      const security = securityOption(options);
      const brokerOptions: EmbeddedBrokerOptions = {
        ...(security && { security: security.options }),
        host: options.host,
        port: portOption(options.port, '--port'),
        unixPath: path.resolve(options.dataDir, 'relais.sock'),
        ...(options.wsPort !== undefined && { wsPort: portOption(options.wsPort, '--ws-port'), wsOrigins: options.wsOrigin ?? [] }),
        ...tlsOption(options),
        limits: {
          maxPacketBytes: positiveOption(options.maxPacket, '--max-packet'),
          connectTimeoutMs: positiveOption(options.connectTimeout, '--connect-timeout'),
          maxKeepaliveSeconds: positiveOption(options.maxKeepalive, '--max-keepalive'),
          maxBufferedBytes: positiveOption(options.maxBuffered, '--max-buffered'),
          stallMs: positiveOption(options.stall, '--stall'),
        },
      };
      const settings = options.router ? routerSettings(options) : undefined;
      try {
        const broker = await startEmbeddedBroker(brokerOptions);
        const brokerService = await startBrokerService(broker); // relais/broker/stats/get (protocol §11.9)
        let router: RouterThread | undefined;
        // Ctrl-C is wired before the announcement: whoever reads "listening" may signal at once.
        onInterrupt(async (signal) => {
          process.stdout.write(`relais: ${signal} received, stopping\n`);
          await router?.close();
          security?.stop();
          await brokerService.close();
          await broker.close();
          process.stdout.write('relais: stopped\n');
          process.exit(EXIT.OK);
        });
        const urls = [broker.url, broker.unixUrl, broker.wsUrl, broker.tlsUrl].filter((url) => url !== undefined);
        process.stdout.write(`relais: broker listening on ${urls.join(' and ')}\n`);
        if (settings) {
          // In a worker thread (its own core), reaching the broker without a TCP hop (protocol §11).
          try {
            router = await startRouterThread(broker, { ...settings, persistentSession: false });
          } catch (error) {
            await broker.close();
            fail(EXIT.ERROR, `the router did not start: ${(error as Error).message} (--no-router runs the broker alone)`);
          }
          process.stdout.write(`relais: router recording the request history to ${settings.database}\n`);
        }
        process.stdout.write(`relais: clients connect with --broker ${broker.url ?? broker.unixUrl} (or RELAIS_BROKER); Ctrl-C stops\n`);
        if (broker.wsUrl && options.wsOrigin?.includes('*')) {
          process.stderr.write('relais: warning: --ws-origin * lets any web page the users of this machine open send commands and read every message\n');
        }
        if (security) {
          process.stdout.write(`relais: security on: identities ${security.identitiesFile}, policy ${security.policyFile ?? '(the default policy)'}; clients connect with username <identity>, password <token>, client id <identity>\n`);
        } else if (!isLoopbackHost(options.host)) {
          // The embedded broker has no authentication yet: say so when it leaves this machine.
          process.stderr.write(`relais: warning: listening on ${options.host} without authentication: anyone who can reach this address can send commands and read every message\n`);
        }
      } catch (error) {
        if (error instanceof BrokerStartError) fail(EXIT.ERROR, error.message);
        throw error;
      }
    });
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
  if (options.tlsCert === undefined && options.tlsKey === undefined) return {};
  if (options.tlsCert === undefined || options.tlsKey === undefined) fail(EXIT.USAGE, '--tls-cert and --tls-key go together');
  return { tls: { cert: readFileOption(options.tlsCert, '--tls-cert'), key: readFileOption(options.tlsKey, '--tls-key'), port: portOption(options.tlsPort, '--tls-port') } };
}

/** `--secure`, `--identities`, `--policy`: the broker's security, or undefined (off, the default). */
function securityOption(options: StartOptions): { options: BrokerSecurity; identitiesFile: string; policyFile?: string; stop(): void } | undefined {
  if (!options.secure && options.identities === undefined && options.policy === undefined) return undefined;
  const identitiesFile = path.resolve(options.identities ?? path.join(options.dataDir, 'identities.json'));
  const givenPolicy = options.policy ?? path.join(options.dataDir, 'policy.json');
  const policyFile = options.policy !== undefined || fs.existsSync(givenPolicy) ? path.resolve(givenPolicy) : undefined;
  try {
    const identities = new IdentityStore(identitiesFile);
    if (identities.list().length === 0) {
      fail(EXIT.USAGE, `no identities in ${identitiesFile}: nobody could connect; create one with: relais identity add <name> --role client --token${options.identities === undefined ? ` --data-dir ${options.dataDir}` : ` --file ${identitiesFile}`}`);
    }
    let policy: Policy = policyFile ? loadPolicy(policyFile) : defaultPolicy();
    // Reloaded without a restart (issue 7 §4); a bad new file keeps the policy in force.
    const reload = () => {
      try {
        policy = loadPolicy(policyFile!);
        process.stdout.write(`relais: policy ${policyFile} reloaded\n`);
      } catch (error) {
        process.stderr.write(`relais: the new policy is refused, the previous one stays in force: ${(error as Error).message}\n`);
      }
    };
    if (policyFile) fs.watchFile(policyFile, { interval: 1000 }, (now, before) => now.mtimeMs !== before.mtimeMs && reload()).unref();
    return {
      options: { identities, policy: () => policy },
      identitiesFile,
      ...(policyFile && { policyFile }),
      stop: () => policyFile && fs.unwatchFile(policyFile),
    };
  } catch (error) {
    if (error instanceof PolicyError) fail(EXIT.USAGE, `invalid policy: ${error.message}`);
    if (error instanceof IdentityError) fail(EXIT.USAGE, error.message);
    throw error;
  }
}
