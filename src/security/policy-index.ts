/**
 * The policy's rules compiled into one trie of pattern levels per operation, so that finding
 * the first rule that allows a topic costs about its number of levels, not the number of rules
 * (docs/security.md "How a decision is made"). It answers exactly what scanning the rules in
 * order answers (`firstAllowingRuleByScan` in policy.ts, compared by a property test in
 * test/unit/policy.test.ts): the lowest rule index among the patterns that cover the topic and
 * whose rule applies to the subject.
 *
 * Each node stores, where a pattern ends, the lowest rule index per kind of subject the rule
 * names (everyone, each role, each identity): a subject then only looks at its own. Pure: built
 * once per policy object and kept beside it (policy.ts).
 */
import type { Operation, Policy, Rule } from './policy.js';

/** The lowest index of a rule ending here, among all and among those whose first level is concrete. */
interface Lowest {
  all: number;
  /** A first level that is a word, `${id}` or `${role}` (not a wildcard): only these can be "a pattern beginning with relais/". */
  concrete: number;
}

/** Where patterns end at a node: the lowest rule per kind of subject. */
interface Ends {
  everyone?: Lowest;
  byRole?: Map<string, Lowest>;
  byIdentity?: Map<string, Lowest>;
}

interface Node {
  words?: Map<string, Node>;
  plus?: Node;
  id?: Node;
  role?: Node;
  /** `${path}`: one or more levels, none of them `#`. */
  path?: Node;
  /** Reached through `${path}`: may take one more level and stay. */
  isPath?: boolean;
  /** Patterns whose next (last) level is `#`: they cover whatever remains, nothing included. */
  hash?: Ends;
  /** Patterns that end exactly here. */
  end?: Ends;
}

/**
 * A pattern the trie cannot hold exactly, checked as the scan does: `${role}` twice stands for
 * the same role each time; `${serves}` stands for several levels, each identity's own.
 */
interface Residual {
  rule: number;
  levels: string[];
}

export interface RuleIndex {
  root: Node;
  residual: Residual[];
}

/** The subject as decide() resolves it. */
export interface IndexedSubject {
  /** The client id: what `${id}` stands for. */
  self: string;
  /** The identity: what a rule's `identities` name. */
  identity: string;
  roles: ReadonlySet<string>;
}

/**
 * The first rule allowing the topic, and the first whose pattern begins with a concrete level
 * (a word, `${id}` or `${role}`: the topic's own first level), for the built-in rules that ask
 * for a pattern naming its root (relais-actions, restricted-actions).
 */
export interface Found {
  any?: number;
  concrete?: number;
}

const NONE = Number.POSITIVE_INFINITY;

function lower(lowest: Lowest | undefined, rule: number, concrete: boolean): Lowest {
  const into = lowest ?? { all: NONE, concrete: NONE };
  if (rule < into.all) into.all = rule;
  if (concrete && rule < into.concrete) into.concrete = rule;
  return into;
}

function record(ends: Ends, rule: Rule, index: number, concrete: boolean): void {
  if (!rule.roles && !rule.identities) {
    ends.everyone = lower(ends.everyone, index, concrete);
    return;
  }
  for (const role of rule.roles ?? []) {
    const byRole = (ends.byRole ??= new Map());
    byRole.set(role, lower(byRole.get(role), index, concrete));
  }
  for (const identity of rule.identities ?? []) {
    const byIdentity = (ends.byIdentity ??= new Map());
    byIdentity.set(identity, lower(byIdentity.get(identity), index, concrete));
  }
}

const newEnds = (): Ends => ({});

export function buildRuleIndex(policy: Policy, operation: Operation): RuleIndex {
  const root: Node = {};
  const residual: Residual[] = [];
  policy.rules.forEach((rule, index) => {
    for (const pattern of rule[operation]) {
      const levels = pattern.split('/');
      if (levels.filter((level) => level === '${role}').length > 1 || levels.includes('${serves}')) {
        residual.push({ rule: index, levels });
        continue;
      }
      const first = levels[0];
      const concrete = first !== '+' && first !== '#' && first !== '${path}';
      let node = root;
      for (let i = 0; i < levels.length; i++) {
        const level = levels[i]!;
        if (level === '#') {
          // checkPattern: '#' is always the last level.
          record((node.hash ??= newEnds()), rule, index, concrete);
          break;
        }
        if (level === '+') node = node.plus ??= {};
        else if (level === '${id}') node = node.id ??= {};
        else if (level === '${role}') node = node.role ??= {};
        else if (level === '${path}') node = node.path ??= { isPath: true };
        else {
          node.words ??= new Map();
          let next = node.words.get(level);
          if (!next) node.words.set(level, (next = {}));
          node = next;
        }
        if (i === levels.length - 1) record((node.end ??= newEnds()), rule, index, concrete);
      }
    }
  });
  return { root, residual };
}

/**
 * The lowest rules whose pattern covers `levels` (a topic name, or a filter: covered when the
 * pattern matches every topic the filter can) and which apply to `who`. `coversResidual`
 * checks a residual pattern the way the scan does, expanded for `who` (and beginning with
 * `root`, when given).
 */
export function findAllowingRules(index: RuleIndex, who: IndexedSubject, levels: readonly string[], coversResidual: (rule: number, levels: readonly string[], root: string | undefined) => boolean): Found {
  let any = NONE;
  let concrete = NONE;
  const take = (ends: Ends | undefined) => {
    if (!ends) return;
    const pick = (lowest: Lowest | undefined) => {
      if (!lowest) return;
      if (lowest.all < any) any = lowest.all;
      if (lowest.concrete < concrete) concrete = lowest.concrete;
    };
    pick(ends.everyone);
    if (ends.byIdentity) pick(ends.byIdentity.get(who.identity));
    if (ends.byRole) for (const role of who.roles) pick(ends.byRole.get(role));
  };
  let states: Node[] = [index.root];
  for (const level of levels) {
    const next = new Set<Node>();
    for (const node of states) {
      take(node.hash);
      // Only a pattern's '#' covers a filter's '#' (taken above).
      if (level === '#') continue;
      const word = node.words?.get(level);
      if (word) next.add(word);
      if (node.id && level === who.self) next.add(node.id);
      if (node.role && who.roles.has(level)) next.add(node.role);
      if (node.plus) next.add(node.plus);
      if (node.path) next.add(node.path);
      if (node.isPath) next.add(node);
    }
    if (next.size === 0) {
      states = [];
      break;
    }
    states = [...next];
  }
  for (const node of states) {
    take(node.end);
    take(node.hash);
  }
  for (const { rule, levels: pattern } of index.residual) {
    if (rule >= any && rule >= concrete) continue;
    if (!coversResidual(rule, pattern, undefined)) continue;
    if (rule < any) any = rule;
    // Expanded, does it begin with the topic's own first level (what ${serves} stands for may not)?
    if (rule < concrete && levels[0] !== undefined && coversResidual(rule, pattern, levels[0])) concrete = rule;
  }
  return { ...(any !== NONE && { any }), ...(concrete !== NONE && { concrete }) };
}
