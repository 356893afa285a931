/**
 * The shapes of the journal lines the actors write and the checks read: one place, so a
 * writer and its reader cannot drift apart. Times are epoch ms of this machine's clock (every
 * process of the soak runs on it).
 */

/** A handler started running a command (written before it does anything else). */
export interface RunRecord {
  run: string;
  by: string;
  requester: string;
  action: string;
  /** The command's `destination`: this handler's id when it was sent to it, `*` when sent to every handler (protocol §4.6). */
  destination: string;
  at: number;
}

/** A requester sent a command. */
export interface SentRecord {
  sent: string;
  action: string;
  target?: string;
  timeout: number;
  workMs: number;
  at: number;
}

/** What a requester saw of one request, written when it ended. */
export interface EndRecord {
  end: string;
  at: number;
  /** `ok`: a final result; `remote`: a final error from the handler; `failed`: a local error (time-out, handler gone, …). */
  outcome: 'ok' | 'remote' | 'failed';
  /** The error's class, for `remote` and `failed`. */
  error?: string;
  code?: number;
  message?: string;
  /** The handler that answered or took it, when one did. */
  handler?: string;
  /** When each step arrived (epoch ms): the acknowledgement, the progress steps, the final. */
  accepted: number[];
  progress: number[];
  /** The fraction of each progress step, in the same order: one step yielded twice shows as the same fraction twice. */
  fractions: number[];
  final?: number;
}

/** A requester's history query (`relais/history/get` for one of its answered tokens). */
export interface HistoryQueryRecord {
  historyQuery: string;
  at: number;
  ms: number;
  rows?: number;
  error?: string;
}

/** A notification a requester published. */
export interface NoteSentRecord {
  note: number;
  at: number;
}

/** An event the follower (bus.events) or the web client (SSE) was given. */
export interface EventRecord {
  cursor: number;
  type: string;
  at: number;
}

/** A gap the stream reported: `missed` events after cursor `after`. */
export interface GapRecord {
  gap: number;
  after: number;
  at: number;
}

/** The follower saw a notification. */
export interface NoteSeenRecord {
  noteFrom: string;
  seq: number;
  at: number;
}

/** The web client's HTTP calls. */
export interface HttpRecord {
  http: 'post-action' | 'get-history' | 'sse-connect' | 'sse-drop';
  status?: number;
  token?: string;
  error?: string;
  ms?: number;
  at: number;
}

/** An actor's last line, once it stopped on request: nothing it started was left pending. */
export interface DoneRecord {
  done: true;
  pending: number;
  /** An event consumer: the router's last cursor when it was told to stop, which it read up to before stopping. */
  caughtUpTo?: number;
  at: number;
}

/** One file transfer with `relais send` or `relais fetch`. */
export interface TransferRecord {
  direction: 'send' | 'fetch';
  file: string;
  size: number;
  startedAt: number;
  endedAt: number;
  exitCode: number | null;
  signal: string | null;
  /** Exit 0: whether the bytes at the far end are the bytes sent. */
  identical?: boolean;
  /** The soak had to kill it (it did not end within its bound). */
  hung: boolean;
  /** The agent was killed while it ran. */
  agentKilled: boolean;
  stderrTail?: string;
}
