/** The journals of a run, read back and sorted by what each line is (records.ts). */
import { readJournal } from './journal.js';
import type { RequesterJournal } from './invariants.js';
import type { DoneRecord, EndRecord, EventRecord, GapRecord, HistoryQueryRecord, HttpRecord, NoteSeenRecord, NoteSentRecord, RunRecord, SentRecord, TransferRecord } from './records.js';

export interface Evidence {
  requesters: Array<RequesterJournal & { historyQueries: HistoryQueryRecord[]; notesSent: NoteSentRecord[] }>;
  runs: RunRecord[];
  follower: { stream: Array<EventRecord | GapRecord>; notesSeen: NoteSeenRecord[]; done?: DoneRecord };
  webClient: { stream: Array<EventRecord | GapRecord>; http: HttpRecord[]; done?: DoneRecord };
  transfers: TransferRecord[];
}

type AnyRecord = Record<string, unknown>;

export function readEvidence(journals: { handlers: string[]; requesters: string[]; follower: string; webClient: string; transfers: string }, requesterNames: string[]): Evidence {
  const requesters = journals.requesters.map((file, index) => {
    const records = readJournal<AnyRecord>(file);
    return {
      name: requesterNames[index]!,
      sent: records.filter((record) => 'sent' in record) as unknown as SentRecord[],
      ends: records.filter((record) => 'end' in record) as unknown as EndRecord[],
      historyQueries: records.filter((record) => 'historyQuery' in record) as unknown as HistoryQueryRecord[],
      notesSent: records.filter((record) => 'note' in record) as unknown as NoteSentRecord[],
      ...doneOf(records),
    };
  });
  const follower = readJournal<AnyRecord>(journals.follower);
  const web = readJournal<AnyRecord>(journals.webClient);
  return {
    requesters,
    runs: journals.handlers.flatMap((file) => readJournal<RunRecord>(file)),
    follower: { stream: streamOf(follower), notesSeen: follower.filter((record) => 'noteFrom' in record) as unknown as NoteSeenRecord[], ...doneOf(follower) },
    webClient: { stream: streamOf(web), http: web.filter((record) => 'http' in record) as unknown as HttpRecord[], ...doneOf(web) },
    transfers: readJournal<TransferRecord>(journals.transfers),
  };
}

function streamOf(records: AnyRecord[]): Array<EventRecord | GapRecord> {
  return records.filter((record) => 'cursor' in record || 'gap' in record) as unknown as Array<EventRecord | GapRecord>;
}

function doneOf(records: AnyRecord[]): { done?: DoneRecord } {
  const done = records.find((record) => record.done === true) as DoneRecord | undefined;
  return done ? { done } : {};
}
