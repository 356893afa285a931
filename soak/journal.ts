/**
 * What each actor saw, one JSON object a line, appended with a synchronous write: a line is in
 * the file (the kernel's) once `write` returns, so a kill -9 right after loses nothing. The
 * checks read these files at the end (Jepsen's "history": what each client observed, when).
 */
import fs from 'node:fs';

export class Journal {
  private readonly fd: number;

  constructor(readonly file: string) {
    this.fd = fs.openSync(file, 'a');
  }

  write(record: object): void {
    fs.writeSync(this.fd, `${JSON.stringify(record)}\n`);
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/** Every whole line of a journal; a line cut by a kill (the last one) is left out. */
export function readJournal<T>(file: string): T[] {
  if (!fs.existsSync(file)) return [];
  const records: T[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    try {
      records.push(JSON.parse(line) as T);
    } catch {
      // a torn last line
    }
  }
  return records;
}
