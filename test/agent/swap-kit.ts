/**
 * An attacker with write access to a disk folder, for real: a child process that swaps two
 * entries of the disk (a folder and a symlink leading out of it) with renameat2(2)
 * RENAME_EXCHANGE in a tight loop, so every path lookup the agent makes may see either.
 * Python's ctypes on libc (Debian's /usr/bin/python3), or a tiny C program compiled here when
 * gcc is there; without either the race tests skip loudly (or fail under RELAIS_REQUIRE_PEERS=1).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findBinary, within } from '../testkit/index.js';

const PYTHON = '/usr/bin/python3';

/** Exchanges argv[1] and argv[2] until killed; prints "ready" after the first exchange. */
const PYTHON_SWAPPER = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
renameat2 = libc.renameat2
renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
AT_FDCWD, RENAME_EXCHANGE = -100, 2
a, b = os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2])
if renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0:
    sys.exit("renameat2: " + os.strerror(ctypes.get_errno()))
print("ready", flush=True)
while True:
    renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
`;

const C_SWAPPER = `
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE 2
#endif
static long swap(const char *a, const char *b) { return syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE); }
int main(int argc, char **argv) {
  if (argc != 3) return 2;
  if (swap(argv[1], argv[2]) != 0) { fprintf(stderr, "renameat2: %s\\n", strerror(errno)); return 1; }
  printf("ready\\n"); fflush(stdout);
  for (;;) swap(argv[1], argv[2]);
}
`;

function pythonHasRenameat2(): boolean {
  if (!fs.existsSync(PYTHON)) return false;
  try {
    execFileSync(PYTHON, ['-c', 'import ctypes; ctypes.CDLL(None).renameat2'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/** The command that runs the swapper, or why there is none. */
function swapperCommand(): { command: string; args: string[] } | string {
  if (pythonHasRenameat2()) return { command: PYTHON, args: ['-c', PYTHON_SWAPPER] };
  const gcc = findBinary('gcc') ?? findBinary('cc');
  if (!gcc) return `neither ${PYTHON} with ctypes renameat2 nor gcc is available`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-swapper-'));
  const source = path.join(dir, 'swapper.c');
  fs.writeFileSync(source, C_SWAPPER);
  const binary = path.join(dir, 'swapper');
  try {
    execFileSync(gcc, ['-O2', '-o', binary, source], { stdio: 'pipe', timeout: 60_000 });
  } catch (error) {
    return `the C swapper does not compile: ${(error as Error).message}`;
  }
  return { command: binary, args: [] };
}

let found: ReturnType<typeof swapperCommand> | undefined;

/** Whether the race tests run: a swapper exists, or a loud skip (a failure under RELAIS_REQUIRE_PEERS=1). */
export function swapGate(what: string): { skip: string | false } {
  found ??= swapperCommand();
  if (typeof found !== 'string') return { skip: false };
  if (process.env.RELAIS_REQUIRE_PEERS === '1') throw new Error(`a renameat2 swapper is required (RELAIS_REQUIRE_PEERS=1) for ${what}: ${found}`);
  const line = `!!! SKIPPING ${what}: ${found} (apt-get install python3 or gcc) !!!`;
  console.error(`\n${'!'.repeat(line.length)}\n${line}\n${'!'.repeat(line.length)}\n`);
  return { skip: found };
}

export interface Swapper {
  /** Stops the swapping and waits for the process to end. */
  stop(): Promise<void>;
}

/** Starts swapping `a` and `b` (both must exist) and resolves once the first exchange is done. */
export async function startSwapper(a: string, b: string): Promise<Swapper> {
  found ??= swapperCommand();
  if (typeof found === 'string') throw new Error(found);
  const child: ChildProcess = spawn(found.command, [...found.args, a, b], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit');
  await within(
    new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
      void exited.then(() => reject(new Error(`the swapper ended before swapping: ${stderr}`)));
    }),
    10_000,
    'the swapper starting',
  );
  return {
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
