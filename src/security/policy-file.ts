/** Reads a policy file (JSON, or YAML by its extension) and validates it: the I/O half of policy.ts. */
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, parseDocument } from 'yaml';
import { defaultPolicyYaml, DEFAULT_POLICY_DATA } from './default-policy.js';
import { parsePolicy, PolicyError, type Policy } from './policy.js';

const isYaml = (file: string) => /\.ya?ml$/i.test(file);

export function loadPolicy(file: string): Policy {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new PolicyError(`${file}: cannot read it: ${(error as Error).message}`);
  }
  return parsePolicyText(text, file);
}

function parsePolicyText(text: string, file: string): Policy {
  const yaml = isYaml(file);
  let data: unknown;
  try {
    // YAML's own anchors/aliases are capped: a "billion laughs" file is refused, not expanded.
    data = yaml ? parseYaml(text, { maxAliasCount: 100 }) : JSON.parse(text);
  } catch (error) {
    throw new PolicyError(`${file}: not valid ${yaml ? 'YAML' : 'JSON'}: ${(error as Error).message}`);
  }
  return parsePolicy(data, file);
}

/**
 * Sets what `identity` serves in the policy file (its `identities` entry, `${serves}`), keeping
 * the rest of the file as it is (a YAML file's comments included). An absent file is first
 * written with the default policy. The new file is validated before it replaces the old one,
 * in one rename, so a broker watching it never reads half of it. Returns whether it was created.
 */
export function setServes(file: string, identity: string, serves: readonly string[]): { created: boolean } {
  const created = !fs.existsSync(file);
  const before = created ? (isYaml(file) ? defaultPolicyYaml() : `${JSON.stringify(DEFAULT_POLICY_DATA, null, 2)}\n`) : fs.readFileSync(file, 'utf8');
  parsePolicyText(before, file);
  let after: string;
  if (isYaml(file)) {
    const doc = parseDocument(before);
    const list = doc.createNode([...serves]);
    list.flow = true;
    doc.setIn(['identities', identity, 'serves'], list);
    after = doc.toString({ lineWidth: 0, flowCollectionPadding: false });
  } else {
    const data = JSON.parse(before) as { identities?: Record<string, Record<string, unknown>> };
    data.identities ??= {};
    data.identities[identity] = { ...data.identities[identity], serves: [...serves] };
    after = `${JSON.stringify(data, null, 2)}\n`;
  }
  parsePolicyText(after, file);
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(temporary, after, { mode: created ? 0o644 : fs.statSync(file).mode & 0o777 });
  fs.renameSync(temporary, file);
  return { created };
}
