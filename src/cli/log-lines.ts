/**
 * Which log lines the CLI's long-running commands (start, router, serve, agent, bridge) write:
 * they take `--log-format readable|json` (RELAIS_LOG_FORMAT); without it, standard error decides:
 * a terminal gets readable lines, anything else JSON. The lines are made in src/logging/log-lines.ts.
 */
import { Option, type Command } from 'commander';
import { LOG_FORMATS, type LogFormat } from '../logging/log-lines.js';

/** `--log-format`, on the commands that run until stopped. */
export function addLogFormatOption(command: Command): Command {
  return command.addOption(
    new Option('--log-format <format>', 'log lines on standard error: readable (the default on a terminal) or json, as pino writes them (the default otherwise)').choices(LOG_FORMATS).env('RELAIS_LOG_FORMAT'),
  );
}

/** The format asked for, else readable on a terminal and JSON in a pipe or a file. */
export function logFormatOf(options: { logFormat?: string }, terminal = process.stderr.isTTY === true): LogFormat {
  if (options.logFormat === 'json' || options.logFormat === 'readable') return options.logFormat;
  return terminal ? 'readable' : 'json';
}

