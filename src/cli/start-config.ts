/**
 * The configuration file `relais init` writes and `relais start --config` reads
 * (docs/security.md "A secure set-up in one command"). Every field stands for a `relais start`
 * flag; a flag given on the command line wins over the file. Paths are relative to the file.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';

const port = z.number().int().min(0).max(65535);
const file = z.string().min(1);

export const startConfigSchema = z
  .object({
    version: z.literal(1),
    dataDir: file.optional(),
    /** Address of the plain TCP (and WebSocket) listener: keep it on loopback (the internal interface). */
    host: z.string().min(1).optional(),
    port: port.optional(),
    socket: z.object({ mode: z.enum(['0600', '0660']), group: z.union([z.string().min(1), z.number().int().min(0)]).optional() }).strict().optional(),
    /** The external interface: TLS 1.3, client certificates signed by `ca`, or tokens. */
    tls: z.object({ host: z.string().min(1).optional(), port: port.optional(), wsPort: port.optional(), cert: file, key: file, ca: file.optional() }).strict().optional(),
    /** The CA that issues client certificates (`relais identity add --cert`); the broker only needs `tls.ca`. */
    ca: z.object({ cert: file, key: file }).strict().optional(),
    identities: file.optional(),
    policy: file.optional(),
    ws: z.object({ port, origins: z.array(z.string()).optional() }).strict().optional(),
    /** The web page and HTTP API (docs/http-api.md): `enabled: false` is --no-web. */
    web: z.object({ enabled: z.boolean().optional(), host: z.string().min(1).optional(), port: port.optional(), tls: z.boolean().optional() }).strict().optional(),
    /** This start's site name (protocol §13): --site. */
    site: z.string().min(1).optional(),
    /** A site's link to its central (pull): --uplink and its TLS files. Tokens stay out of the file: RELAIS_UPLINK_TOKEN. */
    uplink: z.object({ url: z.string().min(1), ca: file.optional(), cert: file.optional(), key: file.optional() }).strict().optional(),
    /** A central's links to its sites (push): --downlink <site>=<url> each, and the TLS files they share. Tokens: RELAIS_DOWNLINK_TOKEN. */
    downlinks: z.object({ sites: z.record(z.string().min(1), z.string().min(1)), ca: file.optional(), cert: file.optional(), key: file.optional() }).strict().optional(),
    /** --site-notifications. */
    siteNotifications: z.array(z.string().min(1)).optional(),
  })
  .strict();

export type StartConfig = z.output<typeof startConfigSchema>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Reads and validates `file`; paths in it come back absolute. */
export function readStartConfig(configFile: string): StartConfig {
  let data: unknown;
  try {
    data = JSON.parse(fs.readFileSync(configFile, 'utf8'));
  } catch (error) {
    throw new ConfigError(`${configFile}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file (relais init --dir <dir> writes one)' : (error as Error).message}`);
  }
  const parsed = startConfigSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`${configFile}: ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
  }
  const config = parsed.data;
  const at = (relative: string) => path.resolve(path.dirname(configFile), relative);
  return {
    ...config,
    ...(config.dataDir && { dataDir: at(config.dataDir) }),
    ...(config.tls && { tls: { ...config.tls, cert: at(config.tls.cert), key: at(config.tls.key), ...(config.tls.ca && { ca: at(config.tls.ca) }) } }),
    ...(config.ca && { ca: { cert: at(config.ca.cert), key: at(config.ca.key) } }),
    ...(config.identities && { identities: at(config.identities) }),
    ...(config.policy && { policy: at(config.policy) }),
    ...(config.uplink && { uplink: { ...config.uplink, ...(config.uplink.ca && { ca: at(config.uplink.ca) }), ...(config.uplink.cert && { cert: at(config.uplink.cert) }), ...(config.uplink.key && { key: at(config.uplink.key) }) } }),
    ...(config.downlinks && { downlinks: { ...config.downlinks, ...(config.downlinks.ca && { ca: at(config.downlinks.ca) }), ...(config.downlinks.cert && { cert: at(config.downlinks.cert) }), ...(config.downlinks.key && { key: at(config.downlinks.key) }) } }),
  };
}

/** The config as `relais start` option values (strings, as if typed), by option key. */
function asOptions(config: StartConfig): Record<string, string | string[] | boolean | undefined> {
  return {
    dataDir: config.dataDir,
    host: config.host,
    port: config.port?.toString(),
    socketMode: config.socket?.mode,
    socketGroup: config.socket?.group?.toString(),
    tlsHost: config.tls?.host,
    tlsPort: config.tls?.port?.toString(),
    tlsCert: config.tls?.cert,
    tlsKey: config.tls?.key,
    tlsCa: config.tls?.ca,
    wssPort: config.tls?.wsPort?.toString(),
    identities: config.identities,
    policy: config.policy,
    wsPort: config.ws?.port.toString(),
    wsOrigin: config.ws?.origins,
    web: config.web?.enabled,
    webHost: config.web?.host,
    webPort: config.web?.port?.toString(),
    webTls: config.web?.tls,
    site: config.site,
    uplink: config.uplink?.url,
    uplinkCa: config.uplink?.ca,
    uplinkCert: config.uplink?.cert,
    uplinkKey: config.uplink?.key,
    downlink: config.downlinks && Object.entries(config.downlinks.sites).map(([site, url]) => `${site}=${url}`),
    downlinkCa: config.downlinks?.ca,
    downlinkCert: config.downlinks?.cert,
    downlinkKey: config.downlinks?.key,
    siteNotifications: config.siteNotifications,
  };
}

/** Fills `options` from the config where the command line left an option at its default. */
export function applyStartConfig<T extends object>(command: Command, options: T, config: StartConfig): T {
  const merged = { ...options } as Record<string, unknown>;
  for (const [key, value] of Object.entries(asOptions(config))) {
    if (value === undefined) continue;
    const source = command.getOptionValueSource(key);
    if (source === undefined || source === 'default') merged[key] = value;
  }
  return merged as T;
}
