/**
 * How a store URL (`postgres://user:password@host/db?…`) appears in logs and errors: never
 * with a secret. Free of `pg`, so that a router on SQLite that only names a URL loads no driver.
 */
import { redactBroker } from '../client/options.js';

/** Query parameters of a PostgreSQL URL that say where and as whom, never a secret: shown in errors and logs. */
const SHOWN_PARAMETERS = new Set(['host', 'port', 'dbname', 'user', 'application_name', 'sslmode', 'connect_timeout']);

/**
 * The URL as logs and errors may show it: the password masked, and the value of any query
 * parameter that is not plainly a place or a name (`password=`, `sslpassword=`, `options=` can
 * hold secrets). Read by hand, not with `URL`, which refuses the host-less form pg takes for a
 * Unix socket (`postgres://user@/db?host=/run/postgresql`). A URL whose parts are not plain (an
 * `@` in the query, a `?` or a second `@` in the password) is masked whole after its scheme:
 * too much rather than too little.
 */
export function redactStoreUrl(url: string): string {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url)?.[0];
  if (!scheme) return redactBroker(url);
  let rest = url.slice(scheme.length);
  let credentials = '';
  const at = rest.indexOf('@');
  if (at !== rest.lastIndexOf('@') || rest.slice(0, Math.max(at, 0)).includes('?')) return `${scheme}***`;
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    credentials = userinfo.includes(':') ? `${userinfo.slice(0, userinfo.indexOf(':'))}:***@` : `${userinfo}@`;
    rest = rest.slice(at + 1);
  }
  const question = rest.indexOf('?');
  if (question < 0) return `${scheme}${credentials}${rest}`;
  const shown = [...new URLSearchParams(rest.slice(question + 1))].map(([name, value]) => `${name}=${SHOWN_PARAMETERS.has(name) ? value : '***'}`);
  return `${scheme}${credentials}${rest.slice(0, question)}?${shown.join('&')}`;
}

/** `text` with `url`, and its password as written and decoded, masked: a driver's error may quote either. */
export function maskStoreUrl(text: string, url: string): string {
  let masked = text.split(url).join(redactStoreUrl(url));
  let password = '';
  try {
    password = new URL(url).password;
  } catch {
    // Not a URL pg's form of which URL reads (a host-less socket URL): its password is found by hand.
    password = /^[a-z][a-z0-9+.-]*:\/\/[^:@/]*:([^@]*)@/i.exec(url)?.[1] ?? '';
  }
  for (const secret of new Set([password, safeDecode(password)])) if (secret.length > 0) masked = masked.split(secret).join('***');
  return masked;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
