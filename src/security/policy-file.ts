/** Reads a policy file (JSON, or YAML by its extension) and validates it: the I/O half of policy.ts. */
import fs from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { parsePolicy, PolicyError, type Policy } from './policy.js';

export function loadPolicy(file: string): Policy {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new PolicyError(`${file}: cannot read it: ${(error as Error).message}`);
  }
  const yaml = /\.ya?ml$/i.test(file);
  let data: unknown;
  try {
    // YAML's own anchors/aliases are capped: a "billion laughs" file is refused, not expanded.
    data = yaml ? parseYaml(text, { maxAliasCount: 100 }) : JSON.parse(text);
  } catch (error) {
    throw new PolicyError(`${file}: not valid ${yaml ? 'YAML' : 'JSON'}: ${(error as Error).message}`);
  }
  return parsePolicy(data, file);
}
