/**
 * `relais send <agent> <local-path> <disk>:<path>` and `relais fetch <agent> <disk>:<path>
 * <local-path>` (docs/agent.md "File transfer"): a file or a folder's files, in
 * chunks on the bus, with a progress bar on a terminal (bytes, rate, ETA) and plain lines
 * otherwise. A lost connection is waited out and the transfer continues from what the other
 * end has; running the same command again after an interruption resumes too.
 * Exit 0 when every file arrived and its SHA-256 matched; 1 on a refusal or a failure; 2 on a
 * usage mistake; 3 when the agent does not serve transfers (or is on a site whose link is down,
 * protocol §13.4); 130 on Ctrl-C.
 */
import { Command } from 'commander';
import cliProgress from 'cli-progress';
import { checkClientId, NoHandlerError } from '../library.js';
import { fetchPath, sendPath, type TransferOptions, type TransferSummary } from '../agent/transfer-client.js';
import { parseRemotePath } from '../agent/transfer-protocol.js';
import { addConnectionOptions, addWaitForSiteOption, connectCli, EXIT, exitWhenWritten, fail, failureLine, onInterrupt, printable, waitForSiteOption, type GlobalOptions } from './common.js';

type Direction = 'send' | 'fetch';

export function sendCommand(): Command {
  return transferCommand('send')
    .description('send a local file or folder to a disk of an agent, resuming after a lost connection')
    .argument('<agent>', 'the id of the agent')
    .argument('<local-path>', 'a file, or a folder (its files are sent, their paths kept)')
    .argument('<disk:path>', 'where on the agent: a disk id and a path on it (ending with / for "into this folder")');
}

export function fetchCommand(): Command {
  return transferCommand('fetch')
    .description("fetch a file or folder from a disk of an agent, resuming after a lost connection")
    .argument('<agent>', 'the id of the agent')
    .argument('<disk:path>', 'what: a disk id and a path on it')
    .argument('<local-path>', 'where: a file name, or an existing folder to put it in');
}

function transferCommand(direction: Direction): Command {
  return addWaitForSiteOption(addConnectionOptions(new Command(direction)))
    .option('--no-progress', 'no progress bar or lines')
    .action(async (agent: string, first: string, second: string, options: GlobalOptions & { progress: boolean; waitForSite?: string }) => {
      const problem = checkClientId(agent);
      if (problem) fail(EXIT.USAGE, problem);
      const remoteText = direction === 'send' ? second : first;
      const remote = parseRemotePath(remoteText);
      if (!remote) fail(EXIT.USAGE, `${remoteText}: give the agent side as <disk>:<path>, e.g. data:backups/today.tar`);
      const local = direction === 'send' ? first : second;
      const siteWait = waitForSiteOption(options);
      const bus = await connectCli(options);
      const controller = new AbortController();
      onInterrupt(() => controller.abort(new Error('interrupted')));
      const display = options.progress ? progressDisplay(direction) : undefined;
      const transferOptions: TransferOptions = {
        signal: controller.signal,
        ...siteWait,
        onProgress: display?.update,
        onResume: (file, offset) => display?.note(`${file}: continuing from byte ${offset}`),
        onRetry: (error) => display?.note(`interrupted (${(error as Error).message}); resuming when the connection is back`),
      };
      let exitCode: number = EXIT.OK;
      try {
        const summary: TransferSummary =
          direction === 'send'
            ? await sendPath(bus, agent, local, remote.disk, remote.filepath, transferOptions)
            : await fetchPath(bus, agent, remote.disk, remote.filepath, local, transferOptions);
        display?.stop();
        for (const file of summary.files) process.stdout.write(`${printable(file.path)}  ${file.size} bytes  sha256 ${file.sha256}\n`);
      } catch (error) {
        display?.stop();
        exitCode = controller.signal.aborted ? EXIT.INTERRUPTED : error instanceof NoHandlerError ? EXIT.NO_HANDLER : EXIT.ERROR;
        process.stderr.write(`relais: ${direction} failed: ${failureLine(error, options.waitForSite)}\n`);
        if (exitCode === EXIT.INTERRUPTED) process.stderr.write('relais: what was received is kept; the same command resumes it\n');
      } finally {
        await bus.close();
      }
      await exitWhenWritten(exitCode);
    });
}

/** A bar on a terminal; elsewhere a plain line every 10 % (a log file stays readable). */
function progressDisplay(direction: Direction): { update(done: number, total: number): void; note(text: string): void; stop(): void } {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: `${direction} [{bar}] {percentage}% | {done}/{all} MB | {rate} MB/s | ETA {eta_formatted}`, stream: process.stderr, hideCursor: true, etaBuffer: 50 },
      cliProgress.Presets.shades_classic,
    );
    const started = Date.now();
    let running = false;
    return {
      update(done, total) {
        const values = { done: mb(done), all: mb(total), rate: mb(done / Math.max((Date.now() - started) / 1000, 0.001)) };
        if (!running) {
          bar.start(total, done, values);
          running = true;
        } else bar.update(done, values);
      },
      note: (text) => {
        // A note goes on its own line above the bar, which is drawn again after it.
        if (running) process.stderr.write('\n');
        process.stderr.write(`relais: ${printable(text)}\n`);
      },
      stop: () => running && bar.stop(),
    };
  }
  let shown = -1;
  const started = Date.now();
  return {
    update(done, total) {
      const tenth = total === 0 ? 10 : Math.floor((done / total) * 10);
      if (tenth <= shown) return;
      shown = tenth;
      const seconds = Math.max((Date.now() - started) / 1000, 0.001);
      const rate = done / seconds;
      const eta = rate > 0 ? Math.round((total - done) / rate) : 0;
      process.stderr.write(`relais: ${direction} ${tenth * 10}% ${mb(done)}/${mb(total)} MB ${mb(rate)} MB/s ETA ${eta} s\n`);
    },
    note: (text) => process.stderr.write(`relais: ${printable(text)}\n`),
    stop: () => {},
  };
}

function mb(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}
