/**
 * The `relais` command. It loads only the sub-command it is given (commands.ts): `relais pub`
 * must not pay for the broker, SQLite and the web server that `relais start` loads. With no
 * sub-command, `relais --help` lists them all from the table, loading none.
 */
import { Command } from 'commander';
import { COMMANDS, namedCommand } from './commands.js';
import { CREDENTIALS_HELP } from './credentials-help.js';
import { EXIT, fail } from './exit.js';

// `relais sub '#' | head -2`: once the reader has gone, leave quietly as mosquitto_sub does, not with an EPIPE stack.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(EXIT.OK);
  throw error;
});

const program = new Command('relais')
  .description('Relais: commands with progress, notifications and events over MQTT')
  .version('0.1.0')
  .configureHelp({ subcommandTerm: (command) => `${command.name()} ${command.usage()}`.trim() })
  .addHelpText('after', CREDENTIALS_HELP);

/**
 * Tokens drawn by other clients (a foreign peer, an older one) may begin with `-`, which the
 * parser takes for an option (`relais kill -nvurETG9lBSKBwO`): the error says how to pass one.
 */
function hintTokensAfterDashes(command: Command): Command {
  command.configureOutput({
    outputError: (text, write) => {
      const word = /unknown option '(-[A-Za-z0-9_][A-Za-z0-9_-]{5,})'/.exec(text)?.[1];
      const names: string[] = [];
      for (let at: Command | null = command; at; at = at.parent) names.unshift(at.name());
      write(word ? `${text}relais: if ${word} is a token, put it after --: ${names.join(' ')} -- ${word}\n` : text);
    },
  });
  for (const sub of command.commands) hintTokensAfterDashes(sub);
  return command;
}

const named = namedCommand(process.argv.slice(2));
if (named) program.addCommand(hintTokensAfterDashes(await named.load()));
else for (const entry of COMMANDS) program.addCommand(new Command(entry.name).usage(entry.usage).description(entry.summary));

// Usage mistakes exit 2 where they are found; what gets here failed at run time (e.g. no broker).
program.parseAsync(process.argv).catch((error: Error) => fail(EXIT.ERROR, error.message));
