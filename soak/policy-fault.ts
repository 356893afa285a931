/**
 * A policy file replaced by a broken one while `relais start --config` runs with security on
 * (docs/security.md: the file is re-read when it changes; a bad new one is refused and the old
 * one kept). The soak writes the broken file (atomically, as an editor or a deployment tool
 * does), waits for the refusal, then checks with two identities over the HTTP API that the old
 * policy is the one in force: an observer may not send a command (403) and a client may (it
 * passes the policy and meets 404: nobody serves the probe's action). Then the good file goes
 * back and must be reloaded.
 */
import fs from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { ManagedProcess } from './supervisor.js';

export const BROKEN_POLICIES = ['truncated', 'empty', 'unknown-role-granting-everything'] as const;
export type BrokenPolicy = (typeof BROKEN_POLICIES)[number];

export interface PolicyProbe {
  /** The HTTP status an observer's command gets: 403 under the kept policy. */
  observer: number | string;
  /** The HTTP status a client's command gets: 404 (no handler) under the kept policy. */
  client: number | string;
}

export interface PolicyFaultResult {
  variant: BrokenPolicy;
  refused: boolean;
  /** The old policy was in force while the broken file was there (the probe's answers). */
  keptOld: boolean;
  probe?: PolicyProbe;
  restored: boolean;
  note?: string;
}

const REFUSED = /the new policy is refused, the previous one stays in force/;
const RELOADED = /policy .* reloaded/;
/** The file is polled every second (fs.watchFile); a busy machine may take a few more. */
const NOTICE_MS = 30_000;

export function brokenPolicyText(variant: BrokenPolicy, good: string): string {
  switch (variant) {
    case 'truncated': {
      // Half of the file, cut inside a list: a YAML file cut at a line's end may still be a valid, smaller policy.
      const list = good.indexOf('[', Math.floor(good.length / 2));
      return good.slice(0, list === -1 ? Math.floor(good.length / 2) : list + 1);
    }
    case 'empty':
      return '';
    case 'unknown-role-granting-everything': {
      // The file is YAML (relais init) or JSON; JSON is YAML, and is what is written back.
      const policy = parseYaml(good) as { rules: unknown[] };
      policy.rules.push({ name: 'everyone everything', roles: ['everyone'], publish: ['#'], subscribe: ['#'] });
      return JSON.stringify(policy, null, 2);
    }
  }
}

export async function breakPolicy(options: {
  broker: ManagedProcess;
  policyFile: string;
  variant: BrokenPolicy;
  holdMs: number;
  probe: () => Promise<PolicyProbe>;
}): Promise<PolicyFaultResult> {
  const { broker, policyFile, variant } = options;
  const good = fs.readFileSync(policyFile, 'utf8');
  const result: PolicyFaultResult = { variant, refused: false, keptOld: false, restored: false };
  const started = Date.now();
  const refused = broker.nextLine(REFUSED, NOTICE_MS).then(() => true, () => false);
  replaceFile(policyFile, brokenPolicyText(variant, good));
  result.refused = await refused;
  try {
    result.probe = await options.probe();
    result.keptOld = result.probe.observer === 403 && result.probe.client === 404;
  } catch (error) {
    result.note = `probe failed: ${(error as Error).message}`;
  }
  const rest = options.holdMs - (Date.now() - started);
  if (rest > 0) await new Promise((resolve) => setTimeout(resolve, rest));
  const reloaded = broker.nextLine(RELOADED, NOTICE_MS).then(() => true, () => false);
  replaceFile(policyFile, good);
  result.restored = await reloaded;
  return result;
}

/** Puts the file's new text in place at once (write beside it, then rename). */
function replaceFile(file: string, text: string): void {
  const next = `${file}.next`;
  fs.writeFileSync(next, text, { mode: 0o644 });
  fs.renameSync(next, file);
}
