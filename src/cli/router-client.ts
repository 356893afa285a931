/** What the CLI commands that ask the router share: finding it, Ctrl-C, and what their exit codes mean. */
import { NoHandlerError, type Bus } from '../library.js';
import { connectCli, EXIT, exitWhenWritten, onInterrupt, type GlobalOptions } from './common.js';

/**
 * Connects, waits (3 s) for a router serving `action`, runs `work`, closes and exits: 0 (or the
 * code `work` returns), 3 when no router answers (saying what needs one: `needs`), 1 with the
 * error's message otherwise. Ctrl-C aborts `signal` and ends with 0.
 */
export async function withRouter(options: GlobalOptions, action: string, needs: string, work: (bus: Bus, signal: AbortSignal) => Promise<void | number>): Promise<never> {
  const bus = await connectCli(options);
  const controller = new AbortController();
  onInterrupt(() => controller.abort(new Error('interrupted')));
  let exitCode: number = EXIT.OK;
  try {
    await bus.waitForHandler(action, { timeout: 3000 }).catch(() => {
      throw new NoHandlerError(`no client serves ${action}`);
    });
    exitCode = (await work(bus, controller.signal)) ?? EXIT.OK;
  } catch (error) {
    if (error instanceof NoHandlerError) {
      exitCode = EXIT.NO_HANDLER;
      process.stderr.write(`relais: no router is answering: ${needs} (relais start runs one, or relais router)\n`);
    } else if (!controller.signal.aborted) {
      exitCode = EXIT.ERROR;
      process.stderr.write(`relais: ${(error as Error).message}\n`);
    }
  } finally {
    await bus.close();
  }
  return exitWhenWritten(exitCode);
}
