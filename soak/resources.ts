/** What a process holds, read from /proc: resident memory and open file descriptors (Linux). */
import fs from 'node:fs';

export interface ResourceSample {
  process: string;
  pid: number;
  rssKb: number;
  fds: number;
  at: number;
}

export function sampleProcess(process: string, pid: number): ResourceSample | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(status);
    const fds = fs.readdirSync(`/proc/${pid}/fd`).length;
    return { process, pid, rssKb: rss ? Number(rss[1]) : 0, fds, at: Date.now() };
  } catch {
    return undefined; // gone meanwhile
  }
}
