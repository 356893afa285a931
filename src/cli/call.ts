/**
 * `relais call`: send a command, show its progress, print the result.
 * Exit 0 on code 0, 1 on an error code, 3 when no handler (or its site's link is down,
 * protocol §13.4), 124 on time-out.
 */
import { Command } from 'commander';
import cliProgress from 'cli-progress';
import { CancelledError, checkClientId, checkPath, checkTimeout, isBytes, MAX_TIMER_MS, NoHandlerError, PRIORITIES, RemoteError, TimeoutError, toWire, type Priority } from '../library.js';
import type { Bus, FanOutOptions, RequestOptions } from '../library.js';
import { newToken } from '../client/tokens.js';
import { addFileOption, addRawOption, fileBytes, jsonWithBytes, writePayload } from './binary-payload.js';
import { addConnectionOptions, addWaitForSiteOption, connectCli, fail, failureLine, EXIT, exitWhenWritten, onInterrupt, parseJsonArgument, waitForSiteOption, writeLine, type GlobalOptions } from './common.js';

interface CallOptions extends GlobalOptions {
  file?: string;
  raw?: boolean;
  target?: string;
  timeout: string;
  priority: string;
  json?: boolean;
  detach?: boolean;
  all?: boolean;
  expect?: string[];
  waitForSite?: string;
  seal?: boolean;
}

export function callCommand(): Command {
  return addRawOption(addFileOption(addWaitForSiteOption(addConnectionOptions(new Command('call'))), 'the payload'))
    .description('send a command and wait for its final response (progress bar on a terminal, JSON lines otherwise)')
    .argument('<action>', 'action path, e.g. system/disks/list_disks')
    .argument('[json]', 'payload (JSON); default {}')
    .option('-t, --target <id>', "the one client that must handle it; '*' for every client serving it (default: one the library picks)")
    .option('--timeout <seconds>', 'give up after this many seconds', '30')
    .option('-p, --priority <priority>', `one of ${PRIORITIES.join(', ')}`, 'normal')
    .option('--json', 'JSON lines even on a terminal')
    .option('--all', 'send it to every client serving the action; print each answer by name and who did not answer')
    .option('--expect <id...>', 'with --all: clients that must answer, besides every one serving it now')
    .option('--detach', 'print the token at once, exit once a handler has the command; follow it with relais history --token T --follow')
    .option('--seal', "seal the payload for the handler's identity (its answers come back sealed for yours): with --sealing-keys and --sealing-key (protocol §3.6)")
    .action(async (action: string, json: string | undefined, options: CallOptions) => {
      const problem = checkPath(action) ?? (options.target && options.target !== '*' ? checkClientId(options.target) : undefined);
      if (problem) fail(EXIT.USAGE, problem);
      const seconds = Number(options.timeout);
      if (!(seconds > 0) || checkTimeout(seconds * 1000)) {
        fail(EXIT.USAGE, `--timeout must be a positive number of seconds up to ${Math.floor(MAX_TIMER_MS / 1000)} (24.8 days), got ${options.timeout}`);
      }
      if (!PRIORITIES.includes(options.priority as Priority)) fail(EXIT.USAGE, `--priority must be one of ${PRIORITIES.join(', ')}`);
      const payload = options.file !== undefined ? fileBytes(options.file, json !== undefined) : parseJsonArgument(json ?? '{}', 'the payload');
      const siteWait = waitForSiteOption(options);
      const interactive = process.stdout.isTTY && !options.json;
      if (options.expect && !options.all) fail(EXIT.USAGE, '--expect goes with --all');
      if (options.all && (options.target || options.detach)) fail(EXIT.USAGE, '--all sends to every handler: it does not go with --target or --detach');
      if (options.all && options.seal) fail(EXIT.USAGE, '--seal goes with one handler (--target, or the one the library picks), not --all');
      if (options.seal) checkSealOptions(options);
      const sealed = options.seal ? { seal: true } : {};
      if (options.all && options.waitForSite !== undefined) fail(EXIT.USAGE, '--all names the clients of a site whose link is down at once: it does not go with --wait-for-site');
      // Usage is checked before connecting: a wrong flag is not a broker's problem.
      const bus = await connectCli(options);
      if (options.all) return fanOut(bus, action, payload, { timeout: seconds * 1000, priority: options.priority as Priority, ...(options.expect && { expect: options.expect }) }, process.stdout.isTTY && !options.json);
      if (options.detach) return detach(bus, action, payload, { timeout: seconds * 1000, priority: options.priority as Priority, ...siteWait, ...sealed, ...(options.target && { target: options.target }) }, options.waitForSite);
      const controller = new AbortController();
      onInterrupt(() => controller.abort(new Error('interrupted')));
      const bar = interactive
        ? new cliProgress.SingleBar({ format: `${action} [{bar}] {percentage}% {detail}`, stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic)
        : undefined;
      let exitCode: number = EXIT.OK;
      try {
        bar?.start(100, 0, { detail: '' });
        for await (const step of bus.call(action, payload, {
          timeout: seconds * 1000,
          priority: options.priority as Priority,
          signal: controller.signal,
          ...siteWait,
          ...sealed,
          ...(options.target && { target: options.target }),
        })) {
          // A binary final with --raw is its bytes, even in a pipe (that is what --raw is for).
          if (options.raw && step.kind === 'final' && isBytes(step.payload)) process.stdout.write(step.payload);
          else if (!interactive) process.stdout.write(`${jsonWithBytes(step)}\n`);
          else if (step.kind === 'accepted') {
            bar?.update(step.progress === undefined ? bar.getProgress() * 100 : Math.round(step.progress * 100), { detail: `accepted by ${step.source}` });
          } else if (step.kind === 'progress') {
            bar?.update(step.progress === undefined ? bar.getProgress() * 100 : Math.round(step.progress * 100), { detail: describe(step.payload) });
          } else {
            bar?.update(100, { detail: 'done' });
            bar?.stop();
            writePayload(step.payload, options.raw);
          }
        }
      } catch (error) {
        bar?.stop();
        exitCode = exitCodeOf(error);
        const { responseCode, error: wire } = toWire(error);
        if (!interactive) writeLine({ kind: 'error', code: responseCode, error: wire, ...(error instanceof RemoteError && { source: error.handler }) });
        process.stderr.write(`relais: ${failureLine(error, options.waitForSite)}\n`);
      } finally {
        await bus.close();
      }
      await exitWhenWritten(exitCode);
    });
}

/**
 * Sends the command under a token printed at once, and exits when a handler has it (its
 * acknowledgement, or its first answer from a peer that does not acknowledge). Closing the
 * connection then drops the request here without cancelling it: the handler goes on, and the
 * router's history keeps its answers (protocol §11.2).
 */
async function detach(bus: Bus, action: string, payload: unknown, options: RequestOptions, waitForSite: string | undefined): Promise<never> {
  // The library's tokens: never one a shell command would take for an option (relais kill <token>).
  const token = newToken();
  process.stdout.write(`${token}\n`);
  const steps = bus.call(action, payload, { ...options, token });
  let exitCode: number = EXIT.OK;
  try {
    // next(), not a for-await loop: leaving the loop would cancel the request.
    const first = await steps.next();
    if (!first.done) process.stderr.write(`relais: ${first.value.kind === 'final' ? 'answered' : 'accepted'} by ${first.value.source}\n`);
  } catch (error) {
    exitCode = exitCodeOf(error);
    process.stderr.write(`relais: ${failureLine(error, waitForSite)}\n`);
  }
  await bus.close();
  return exitWhenWritten(exitCode);
}

/**
 * `--all`: every answer by name, then who did not answer (protocol §11.7). Exit 0 when all
 * answered without error; 124 when one asked did not answer in time; else 3 when an expected
 * one does not serve the action (or nobody does); else 1 when one answered with an error.
 */
async function fanOut(bus: Bus, action: string, payload: unknown, options: FanOutOptions, interactive: boolean): Promise<never> {
  const result = await bus.requestAll(action, payload, options);
  await bus.close();
  if (result.answers.length === 0) fail(EXIT.NO_HANDLER, `no client serves ${action}`);
  for (const answer of result.answers) {
    const why = result.absent.includes(answer.id) ? 'absent' : result.unreachable.includes(answer.id) ? 'unreachable' : result.silent.includes(answer.id) ? 'silent' : undefined;
    if (!interactive) writeLine(answer.ok ? answer : { id: answer.id, ok: false, ...(why && { missing: why }), error: toWire(answer.error).error });
    else process.stdout.write(`${answer.ok ? 'ok  ' : why ? 'none' : 'err '} ${answer.id}: ${answer.ok ? jsonWithBytes(answer.payload) : answer.error.message}\n`);
  }
  const failed = result.answers.filter((answer) => !answer.ok).length - result.missing.length;
  const answered = result.answers.length - failed - result.missing.length;
  const summary = [
    `${answered} of ${result.answers.length} answered ok${failed ? `, ${failed} with an error` : ''}`,
    ...(result.silent.length ? [`no answer in time from ${result.silent.join(', ')}`] : []),
    ...(result.absent.length ? [`not serving ${action}: ${result.absent.join(', ')}`] : []),
    ...(result.unreachable.length ? [`on a site whose link is down: ${result.unreachable.join(', ')}`] : []),
  ].join('; ');
  if (interactive) process.stdout.write(`${summary}\n`);
  else writeLine({ summary, missing: result.missing, absent: result.absent, silent: result.silent, unreachable: result.unreachable });
  return exitWhenWritten(result.silent.length > 0 ? EXIT.TIMEOUT : result.absent.length + result.unreachable.length > 0 ? EXIT.NO_HANDLER : failed > 0 ? EXIT.ERROR : EXIT.OK);
}

/** `--seal` needs the keys to seal for (the handler's) and the key to open the answer with (ours): else exit 2 saying which. */
function checkSealOptions(options: CallOptions): void {
  if (options.sealingKeys === undefined) fail(EXIT.USAGE, "--seal needs --sealing-keys (RELAIS_SEALING_KEYS): the public sealing keys file holding the handler identity's keys");
  if (options.sealingKey === undefined) fail(EXIT.USAGE, '--seal needs --sealing-key (RELAIS_SEALING_KEY): the answer comes back sealed for your identity, and that private key opens it');
}

function exitCodeOf(error: unknown): number {
  if (error instanceof NoHandlerError) return EXIT.NO_HANDLER;
  if (error instanceof TimeoutError) return EXIT.TIMEOUT;
  if (error instanceof CancelledError) return EXIT.INTERRUPTED;
  return EXIT.ERROR;
}

function describe(payload: unknown): string {
  if (payload === null || payload === undefined) return '';
  const text = typeof payload === 'string' ? payload : jsonWithBytes(payload);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
