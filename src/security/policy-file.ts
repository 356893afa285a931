/** Reads a policy file (JSON) and validates it: the I/O half of policy.ts. */
import fs from 'node:fs';
import { parsePolicy, PolicyError, type Policy } from './policy.js';

export function loadPolicy(file: string): Policy {
  if (/\.ya?ml$/i.test(file)) throw new PolicyError(`${file}: YAML policy files need the "yaml" package, not installed yet; write the policy as JSON`);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new PolicyError(`${file}: cannot read it: ${(error as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new PolicyError(`${file}: not valid JSON: ${(error as Error).message}`);
  }
  return parsePolicy(data, file);
}
