/**
 * A peer process's side of the line protocol (protocol.ts): its replies on stdout, and its
 * commands read from stdin one at a time, in order (the parent waits for each reply before the
 * next). The peers (child.ts), the idle fleets and the pub/sub children share it.
 */
import { createInterface } from 'node:readline';
import { encodeLine, parseCommand, type Command, type Reply } from './protocol.js';

export function reply(message: Reply): void {
  process.stdout.write(encodeLine(message));
}

/**
 * Says `ready`, then runs `handle` for each command line, after the one before has ended; a
 * line that is not a command is answered with an error. `onEnd` runs once stdin has closed and
 * the last command has ended.
 */
export function serveCommands(ready: Reply, handle: (command: Command) => Promise<void>, onEnd: () => void | Promise<void>): void {
  reply(ready);
  let queue = Promise.resolve();
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const command = parseCommand(line);
    if (!command) return reply({ peer: 'error', message: `not a command: ${line.slice(0, 200)}` });
    queue = queue.then(() => handle(command));
  });
  lines.on('close', () => void queue.then(onEnd));
}
