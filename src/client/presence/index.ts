/**
 * Presence (protocol §7): this client's own (its will, its announcements, its farewell, another
 * client with its id), the directory of the others it keeps from theirs, the sites' links and
 * rosters (protocol §13.4), and the start that
 * waits for its own to come back. The rules of reading and ordering a presence live in
 * src/protocol/presence.ts.
 */
export { Presence, type PresenceEvents } from './presence.js';
export { Directory } from './directory.js';
export { Startup } from './startup.js';
export { SiteDirectory, siteUnreachable, isoSecond, type SiteView, type DownSite } from './sites.js';
