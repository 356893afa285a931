/**
 * The command allow-list (docs/agent.md "Allow-list"): nothing runs unless a rule of the
 * agent's rule set allows it. An argv command needs a rule with its exact program and an
 * argument pattern per position; a command line for /bin/sh needs a rule that says
 * `shell: true`. Pure: no I/O, tested alone.
 */
import { NotAuthorizedError } from '../protocol/errors.js';
import { anchored, type ArgvRule, type CommandRule, type ShellRule } from './config.js';

/** What a request asks to run: an argv (`[program, ...args]`), or a command line for the shell. */
export type CommandLine = string[] | string;

/** What runs once allowed: the exact argv given to spawn, never a shell unless the rule said so. */
export interface AllowedCommand {
  rule: string;
  program: string;
  args: string[];
  shell: boolean;
}

function argumentMatches(rule: string | { pattern: string }, argument: string): boolean {
  return typeof rule === 'string' ? rule === argument : anchored(rule.pattern).test(argument);
}

function argvAllowed(rule: ArgvRule, argv: string[]): boolean {
  const [program, ...args] = argv;
  if (rule.program !== program) return false;
  if (args.length < rule.args.length) return false;
  if (!rule.args.every((pattern, index) => argumentMatches(pattern, args[index]!))) return false;
  const more = args.slice(rule.args.length);
  if (more.length === 0) return true;
  if (!rule.moreArgs || more.length > rule.moreArgs.max) return false;
  const pattern = anchored(rule.moreArgs.pattern);
  return more.every((argument) => pattern.test(argument));
}

function shellAllowed(rule: ShellRule, line: string): boolean {
  return argumentMatches(rule.command, line);
}

export function describeCommand(command: CommandLine): string {
  const text = typeof command === 'string' ? `sh -c ${JSON.stringify(command)}` : command.map((part) => JSON.stringify(part)).join(' ');
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}

/** The allowed form of `command`, or a NotAuthorizedError (code 4) naming the rule set. */
export function allow(command: CommandLine, rules: CommandRule[], ruleSet: string): AllowedCommand {
  if (typeof command === 'string') {
    const rule = rules.find((candidate): candidate is ShellRule => candidate.shell === true && shellAllowed(candidate, command));
    if (rule) return { rule: rule.name, program: '/bin/sh', args: ['-c', command], shell: true };
  } else {
    const rule = rules.find((candidate): candidate is ArgvRule => candidate.shell !== true && argvAllowed(candidate, command));
    if (rule) return { rule: rule.name, program: command[0]!, args: command.slice(1), shell: false };
  }
  throw new NotAuthorizedError(`not allowed by the rule set ${ruleSet} of this agent: ${describeCommand(command)}`);
}
