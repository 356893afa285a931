/**
 * `relais start` as a site or a central (protocol §13.1, docs/protocol.md §13): its site name,
 * the uplink a site dials to its central (pull), the downlinks a central dials to its sites
 * (push), and which of a site's notifications go up. The flags, their checks (usage errors,
 * exit 2), and the links they open.
 */
import { Command, Option } from 'commander';
import type { EmbeddedBroker } from '../broker/embedded.js';
import { redactBroker } from '../client/options.js';
import { CENTRAL_SITE, checkSiteName } from '../protocol/sites.js';
import { checkFilter } from '../protocol/topics.js';
import type { SiteLink } from '../sites/link.js';
import { openDownlink, openUplink } from '../sites/links.js';
import type { WanOptions } from '../sites/wan-connection.js';
import { EXIT, fail, printable, readFileOption } from './common.js';

export interface SiteFlags {
  site: string;
  uplink?: string;
  uplinkCa?: string;
  uplinkCert?: string;
  uplinkKey?: string;
  uplinkToken?: string;
  downlink?: string[];
  downlinkCa?: string;
  downlinkCert?: string;
  downlinkKey?: string;
  downlinkToken?: string;
  siteNotifications?: string[];
}

export function siteOptions(command: Command): Command {
  return command
    .option('--site <name>', `this start's site name (protocol §13): a site dials its central with --uplink; default ${CENTRAL_SITE}`, CENTRAL_SITE)
    .option('--uplink <url>', 'a site: dial the central\'s broker at this URL (mqtts://central:8883) and carry this site\'s clients there (needs --site <name>)')
    .option('--uplink-ca <file>', 'CA certificate (PEM) that signed the central\'s TLS certificate')
    .option('--uplink-cert <file>', 'this site\'s client certificate (PEM) at the central: its CN is the site name (relais identity add --cert --role site)')
    .option('--uplink-key <file>', 'private key (PEM) of --uplink-cert')
    .addOption(new Option('--uplink-token <token>', 'this site\'s token at the central (username: the site name)').env('RELAIS_UPLINK_TOKEN'))
    .option('--downlink <name=url...>', 'a central: dial the site <name> at this URL (poller-1=mqtts://poller-1:8883) and carry its clients here; repeatable')
    .option('--downlink-ca <file>', 'CA certificate (PEM) that signed the sites\' TLS certificates')
    .option('--downlink-cert <file>', 'this central\'s client certificate (PEM) at its sites: its CN is the central\'s site name')
    .option('--downlink-key <file>', 'private key (PEM) of --downlink-cert')
    .addOption(new Option('--downlink-token <token>', 'this central\'s token at its sites (username: the central\'s site name)').env('RELAIS_DOWNLINK_TOKEN'))
    .option('--site-notifications <filter...>', 'MQTT filters of the site clients\' notifications and logs carried to the central (default: none)');
}

/** One link this start dials. */
export interface PlannedLink {
  direction: 'uplink' | 'downlink';
  /** The site at the far end of a downlink; this site for the uplink. */
  site: string;
  wan: WanOptions;
}

export interface SitePlan {
  site: string;
  links: PlannedLink[];
  notifications: string[];
}

/** Reads and checks the flags; exits 2 naming the flag at the first problem. */
export function planSites(flags: SiteFlags): SitePlan {
  const siteProblem = checkSiteName(flags.site);
  if (siteProblem) fail(EXIT.USAGE, `--site: ${siteProblem}`);
  const notifications = flags.siteNotifications ?? [];
  for (const filter of notifications) {
    const problem = checkFilter(filter);
    if (problem) fail(EXIT.USAGE, `--site-notifications: ${problem}`);
  }
  const downlinks = flags.downlink ?? [];
  refuseStrays('uplink', flags.uplink, { '--uplink-ca': flags.uplinkCa, '--uplink-cert': flags.uplinkCert, '--uplink-key': flags.uplinkKey });
  refuseStrays('downlink', downlinks.length > 0 ? 'given' : undefined, { '--downlink-ca': flags.downlinkCa, '--downlink-cert': flags.downlinkCert, '--downlink-key': flags.downlinkKey });
  const links: PlannedLink[] = [];
  if (flags.uplink !== undefined) {
    // A site dials its central as its own name: the central has no name to give a start named like itself.
    if (flags.site === CENTRAL_SITE) fail(EXIT.USAGE, `--uplink is for a site: give this start its site name with --site <name> (it is ${CENTRAL_SITE}, the central's name)`);
    if (downlinks.length > 0) fail(EXIT.USAGE, '--uplink and --downlink together: a site with sites of its own is not supported (one central, its sites)');
    links.push({ direction: 'uplink', site: flags.site, wan: wanOptions(flags.uplink, '--uplink', flags.uplinkCa, flags.uplinkCert, flags.uplinkKey, flags.uplinkToken) });
  }
  const named = new Set<string>();
  for (const entry of downlinks) {
    const equals = entry.indexOf('=');
    if (equals <= 0) fail(EXIT.USAGE, `--downlink takes <site name>=<url>, got ${printable(entry)}`);
    const site = entry.slice(0, equals);
    const problem = checkSiteName(site);
    if (problem) fail(EXIT.USAGE, `--downlink ${printable(site)}: ${problem}`);
    if (site === flags.site) fail(EXIT.USAGE, `--downlink ${site}: that is this start's own site name`);
    if (named.has(site)) fail(EXIT.USAGE, `--downlink ${site}: given twice`);
    named.add(site);
    links.push({ direction: 'downlink', site, wan: wanOptions(entry.slice(equals + 1), `--downlink ${site}`, flags.downlinkCa, flags.downlinkCert, flags.downlinkKey, flags.downlinkToken) });
  }
  return { site: flags.site, links, notifications };
}

function refuseStrays(kind: 'uplink' | 'downlink', given: string | undefined, files: Record<string, string | undefined>): void {
  if (given !== undefined) return;
  const stray = Object.entries(files).find(([, value]) => value !== undefined)?.[0];
  if (stray) fail(EXIT.USAGE, `${stray} needs --${kind}`);
}

const WAN_SCHEMES = ['mqtt:', 'mqtts:', 'ws:', 'wss:'];

function wanOptions(url: string, flag: string, ca: string | undefined, cert: string | undefined, key: string | undefined, token: string | undefined): WanOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    fail(EXIT.USAGE, `${flag}: not a URL: ${printable(redactBroker(url))} (mqtts://host:8883)`);
  }
  if (!WAN_SCHEMES.includes(parsed.protocol)) fail(EXIT.USAGE, `${flag}: ${printable(redactBroker(url))}: the URL must start with mqtt://, mqtts://, ws:// or wss://`);
  if ((cert === undefined) !== (key === undefined)) fail(EXIT.USAGE, `${flag}: the client certificate and its key go together`);
  const tls = {
    ...(ca !== undefined && { ca: readFileOption(ca, `${flag} CA`) }),
    ...(cert !== undefined && { cert: readFileOption(cert, `${flag} certificate`) }),
    ...(key !== undefined && { key: readFileOption(key, `${flag} key`) }),
  };
  return { url, ...(Object.keys(tls).length > 0 && { tls }), ...(token !== undefined && token !== '' && { token }) };
}

/** Whether this start is a central (named so, or dialling sites): its identities are its own, no site may speak for them. */
export function isCentral(plan: SitePlan): boolean {
  return plan.site === CENTRAL_SITE || plan.links.some((link) => link.direction === 'downlink');
}

/** The identities of the other ends of this start's links, as its broker admits their local streams (role `site`). */
export function linkPeersOf(plan: SitePlan): string[] {
  return plan.links.map((link) => (link.direction === 'uplink' ? CENTRAL_SITE : link.site));
}

/**
 * Opens every planned link on `broker`: one line each on standard output now, a line at each
 * link up (standard output) and down (standard error), never a secret (URLs are redacted,
 * tokens never printed). Nothing waits for the other end: an unreachable one is retried.
 */
export function openLinks(broker: Pick<EmbeddedBroker, 'connectInProcess'>, plan: SitePlan): SiteLink[] {
  const log = {
    info: (line: string) => void process.stdout.write(`relais: ${printable(line)}\n`),
    warn: (line: string) => void process.stderr.write(`relais: ${printable(line)}\n`),
  };
  return plan.links.map((planned) => {
    const mode = planned.direction === 'uplink' ? 'pull' : 'push';
    process.stdout.write(`relais: site ${planned.site}: ${planned.direction} to ${redactBroker(planned.wan.url)} (${mode})\n`);
    const options = { wan: planned.wan, notifications: plan.notifications, log };
    return planned.direction === 'uplink' ? openUplink(broker, plan.site, options) : openDownlink(broker, plan.site, planned.site, options);
  });
}
