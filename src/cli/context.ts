/**
 * `relais context add|select|ls|show|rm`: named contexts, a broker and its credentials saved
 * once (src/cli/context-store.ts). Every connecting command takes `--context <name>` (or
 * RELAIS_CONTEXT), else uses the selected context; a flag or an environment variable still
 * wins over the context, field by field (see CONNECTION_PRECEDENCE).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { EXIT, fail } from './exit.js';
import { formatColumns } from './table.js';
import { checkContextName, CONTEXT_FIELDS, ContextError, contextsFile, readContexts, writeContexts, type Context, type ContextFile } from './context-store.js';

interface AddOptions extends Context {
  select?: boolean;
  force?: boolean;
}

export function contextCommand(): Command {
  const command = new Command('context')
    .description(`save a broker and its credentials under a name, used by every command (--context <name>, RELAIS_CONTEXT, or the selected one); stored 0600 in ${displayPath(contextsFile())}`)
    .exitOverride((error) => process.exit(error.exitCode === 0 ? EXIT.OK : EXIT.USAGE));

  command
    .command('add <name>')
    .description('save a context: the broker and the files of its credentials (paths only: a token stays in its own file)')
    .requiredOption('-b, --broker <url>', 'broker URL (mqtt://, mqtts://, ws://, wss://, unix:///path), or several separated by commas')
    .option('--id <id>', 'client id on the bus: your identity (the CN of --cert, or the identity of the token)')
    .option('--ca <file>', "PEM certificate(s) of the CA that signed the broker's certificate")
    .option('--cert <file>', 'client certificate (PEM): its CN is the identity')
    .option('--key <file>', 'private key (PEM) of --cert')
    .option('--token-file <file>', "a file holding the identity's token (the context records the path, never the token)")
    .option('--description <text>', 'what this context is for, shown by ls')
    .option('--select', 'select it too: commands use it when they name no context')
    .option('--force', 'replace a context of that name')
    .exitOverride((error) => process.exit(error.exitCode === 0 ? EXIT.OK : EXIT.USAGE))
    .action((name: string, options: AddOptions) =>
      change((saved) => {
        checkContextName(name);
        if (saved.contexts[name] !== undefined && !options.force) throw new ContextError(`a context named ${name} exists: relais context rm ${name} first, or add it again with --force`);
        saved.contexts[name] = newContext(options);
        if (options.select) saved.selected = name;
        return `relais: context ${name} saved${options.select ? ' and selected' : `; relais context select ${name} makes it the default, or --context ${name} on a command`}`;
      }),
    );

  command
    .command('select [name]')
    .description('use this context when a command names none (--context or RELAIS_CONTEXT still win); without a name, print the selected one')
    .option('--none', 'select no context: commands use their flags, the environment and the defaults')
    .exitOverride((error) => process.exit(error.exitCode === 0 ? EXIT.OK : EXIT.USAGE))
    .action((name: string | undefined, options: { none?: boolean }) => {
      if (options.none) {
        if (name !== undefined) fail(EXIT.USAGE, 'give a name or --none, not both');
        return change((saved) => {
          delete saved.selected;
          return 'relais: no context selected';
        });
      }
      if (name === undefined) {
        const { selected } = load();
        if (selected === undefined) fail(EXIT.ERROR, 'no context selected (relais context select <name>)');
        process.stdout.write(`${selected}\n`);
        return;
      }
      change((saved) => {
        if (saved.contexts[name] === undefined) throw new ContextError(`no context named ${name} (relais context ls)`);
        saved.selected = name;
        return `relais: context ${name} selected`;
      });
    });

  command
    .command('ls')
    .description('the saved contexts; * marks the selected one')
    .option('--json', 'as one JSON object')
    .exitOverride((error) => process.exit(error.exitCode === 0 ? EXIT.OK : EXIT.USAGE))
    .action((options: { json?: boolean }) => {
      const saved = load();
      if (options.json) return void process.stdout.write(`${JSON.stringify(saved)}\n`);
      const names = Object.keys(saved.contexts).sort();
      if (names.length === 0) return void process.stdout.write(`no context saved in ${displayPath(contextsFile())}: relais context add <name> --broker <url> …\n`);
      const rows = names.map((name) => [saved.selected === name ? '*' : ' ', name, saved.contexts[name]!.broker, saved.contexts[name]!.id ?? '-', saved.contexts[name]!.description ?? '']);
      process.stdout.write(`${formatColumns([' ', 'NAME', 'BROKER', 'ID', 'DESCRIPTION'], rows)}\n`);
    });

  command
    .command('show [name]')
    .description('what a context holds (the selected one without a name), and whether its files can be read')
    .option('--json', 'as JSON')
    .exitOverride((error) => process.exit(error.exitCode === 0 ? EXIT.OK : EXIT.USAGE))
    .action((name: string | undefined, options: { json?: boolean }) => {
      const saved = load();
      const shown = name ?? saved.selected;
      if (shown === undefined) fail(EXIT.USAGE, 'no context selected: relais context show <name> (relais context ls)');
      const context = saved.contexts[shown];
      if (context === undefined) fail(EXIT.ERROR, `no context named ${shown} (relais context ls)`);
      if (options.json) return void process.stdout.write(`${JSON.stringify({ name: shown, selected: saved.selected === shown, ...context })}\n`);
      const lines = [`context ${shown}${saved.selected === shown ? ' (selected)' : ''}`];
      for (const field of CONTEXT_FIELDS) {
        const value = context[field];
        if (value === undefined) continue;
        const problem = field === 'broker' || field === 'id' || field === 'description' ? '' : fileProblem(value);
        lines.push(`  ${optionName(field).padEnd(13)} ${value}${problem}`);
      }
      process.stdout.write(`${lines.join('\n')}\n`);
    });

  command
    .command('rm <name>')
    .description('remove a context (the files it names are left alone)')
    .exitOverride((error) => process.exit(error.exitCode === 0 ? EXIT.OK : EXIT.USAGE))
    .action((name: string) =>
      change((saved) => {
        if (saved.contexts[name] === undefined) throw new ContextError(`no context named ${name} (relais context ls)`);
        delete saved.contexts[name];
        const wasSelected = saved.selected === name;
        if (wasSelected) delete saved.selected;
        return `relais: context ${name} removed${wasSelected ? '; no context is selected now' : ''}`;
      }),
    );

  return command;
}

/** A context from `add`'s flags: files checked readable now and saved as absolute paths, so that the context works from any directory. */
function newContext(options: AddOptions): Context {
  if ((options.cert === undefined) !== (options.key === undefined)) throw new ContextError('--cert and --key go together');
  if (options.tokenFile !== undefined && options.id === undefined) throw new ContextError('--token-file is the password of an identity: give it with --id <identity>');
  if (hasPassword(options.broker)) throw new ContextError('the broker URL holds a password, which the context would store: put the token in a file and pass --token-file <file> --id <identity>');
  const file = (flag: string, value: string | undefined): string | undefined => {
    if (value === undefined) return undefined;
    const absolute = path.resolve(value);
    try {
      fs.accessSync(absolute, fs.constants.R_OK);
    } catch (error) {
      throw new ContextError(`${flag}: cannot read ${absolute}: ${(error as Error).message}`);
    }
    return absolute;
  };
  const context: Context = { broker: options.broker };
  const fields: Array<[keyof Context, string | undefined]> = [
    ['id', options.id],
    ['ca', file('--ca', options.ca)],
    ['cert', file('--cert', options.cert)],
    ['key', file('--key', options.key)],
    ['tokenFile', file('--token-file', options.tokenFile)],
    ['description', options.description],
  ];
  for (const [field, value] of fields) if (value !== undefined) context[field] = value;
  if (context.tokenFile !== undefined) warnIfShared(context.tokenFile, '--token-file');
  if (context.key !== undefined) warnIfShared(context.key, '--key');
  return context;
}

/** A secret others on the machine can read is worth a line: the context does not copy it, but points every command at it. */
function warnIfShared(file: string, flag: string): void {
  const mode = fs.statSync(file).mode & 0o777;
  if (mode & 0o077) process.stderr.write(`relais: warning: ${flag} ${file} can be read by other users (mode ${mode.toString(8).padStart(3, '0')}): chmod 600 ${file}\n`);
}

function hasPassword(brokers: string): boolean {
  return brokers.split(',').some((broker) => {
    try {
      return new URL(broker.trim()).password !== '';
    } catch {
      return false;
    }
  });
}

function fileProblem(file: string): string {
  try {
    fs.accessSync(file, fs.constants.R_OK);
    return '';
  } catch (error) {
    return `   (cannot read it: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`;
  }
}

function optionName(field: (typeof CONTEXT_FIELDS)[number]): string {
  return field === 'tokenFile' ? '--token-file' : `--${field}`;
}

function displayPath(file: string): string {
  const home = process.env.HOME;
  return home && file.startsWith(`${home}/`) ? `~/${file.slice(home.length + 1)}` : file;
}

function load(): ContextFile {
  try {
    return readContexts();
  } catch (error) {
    if (error instanceof ContextError) fail(EXIT.ERROR, error.message);
    throw error;
  }
}

/** Reads the contexts, applies `edit`, writes them back and prints what `edit` says; a ContextError exits 2 with its message. */
function change(edit: (saved: ContextFile) => string): void {
  try {
    const saved = readContexts();
    const said = edit(saved);
    writeContexts(saved);
    process.stdout.write(`${said}\n`);
  } catch (error) {
    if (error instanceof ContextError) fail(EXIT.USAGE, error.message);
    throw error;
  }
}
