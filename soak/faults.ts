/**
 * The fault injectors: each fault of the schedule done to the deployment, then undone (the
 * process restarted or thawed, the link healed, the disk freed, the good policy back), with
 * what happened recorded: when it really started, when it was healed, and what it did. A lane
 * runs its faults one after the other at their planned times; one that can no longer start
 * before the fault phase ends is recorded as skipped.
 */
import type { Deployment } from './deployment.js';
import { sleep } from './sleep.js';
import { breakPolicy, type PolicyFaultResult } from './policy-fault.js';
import type { Fault, Lane } from './schedule.js';

export interface FaultRecord {
  fault: Fault;
  /** Epoch ms. */
  startedAt?: number;
  /** When the fault was undone and what it hit served again (a restarted process is ready). */
  healedAt?: number;
  outcome: 'done' | 'skipped' | 'failed';
  note?: string;
  /** agent-kill: whether a transfer was running when the agent was killed. */
  midTransfer?: boolean;
  policy?: PolicyFaultResult;
  /** disk-full: bytes the filler took. */
  filledBytes?: number;
}

/** What relais start's router says when its stores refuse (a full disk), and when what waited is stored. */
const REFUSED = { history: /history: rows could not be stored/, events: /events could not be stored/ };
const CAUGHT_UP = { history: /history: the store works again/, events: /events: the store works again/ };
/** How long after the disk is freed the router may take to store what waited (it tries at least once a second). */
const DISK_CATCH_UP_MS = 60_000;

export class FaultRunner {
  readonly records: FaultRecord[] = [];
  private readonly abort = new AbortController();

  constructor(
    private readonly deployment: Deployment,
    private readonly log: (line: string) => void,
  ) {}

  /** Runs every lane's faults at `phaseStart + fault.at`; resolves when all are done or skipped. */
  async run(faults: readonly Fault[], phaseStart: number, phaseMs: number): Promise<void> {
    const lanes = new Map<Lane, Fault[]>();
    for (const fault of faults) lanes.set(fault.lane, [...(lanes.get(fault.lane) ?? []), fault]);
    await Promise.all([...lanes.values()].map((lane) => this.runLane(lane, phaseStart, phaseMs)));
  }

  /** Stops starting new faults (the ones running finish and heal). */
  stop(): void {
    this.abort.abort();
  }

  private async runLane(faults: readonly Fault[], phaseStart: number, phaseMs: number): Promise<void> {
    for (const fault of faults) {
      const wait = phaseStart + fault.at - Date.now();
      if (wait > 0) await sleep(wait, this.abort.signal);
      const record: FaultRecord = { fault, outcome: 'done' };
      this.records.push(record);
      if (this.abort.signal.aborted || Date.now() >= phaseStart + phaseMs) {
        record.outcome = 'skipped';
        record.note = this.abort.signal.aborted ? 'the run was stopped' : 'the lane ran late: it could not start before the fault phase ended';
        continue;
      }
      record.startedAt = Date.now();
      try {
        await this.inject(fault, record);
        record.healedAt = Date.now();
        this.log(`fault #${fault.id} ${fault.kind} ${fault.target}: ${record.outcome}${record.note ? ` (${record.note})` : ''}, healed after ${((record.healedAt - record.startedAt) / 1000).toFixed(1)} s`);
      } catch (error) {
        record.outcome = 'failed';
        record.note = (error as Error).message.slice(0, 2000);
        this.log(`fault #${fault.id} ${fault.kind} ${fault.target}: FAILED: ${record.note}`);
      }
    }
  }

  private async inject(fault: Fault, record: FaultRecord): Promise<void> {
    const { deployment } = this;
    const hold = () => sleep(fault.durationMs);
    switch (fault.kind) {
      case 'broker-kill':
      case 'handler-kill': {
        const process = deployment.processes.get(fault.target)!;
        await process.kill();
        await hold();
        await process.start();
        return;
      }
      case 'agent-kill': {
        // Mid-transfer: wait (a little) for one to be running.
        record.midTransfer = await deployment.transfers.inFlight(15_000);
        deployment.transfers.agentKilled();
        await deployment.agent.kill();
        await hold();
        await deployment.agent.start();
        return;
      }
      case 'broker-stop':
      case 'handler-stop': {
        const process = deployment.processes.get(fault.target)!;
        process.freeze();
        try {
          await hold();
        } finally {
          process.thaw();
        }
        return;
      }
      case 'disk-full': {
        if (deployment.disk.skipReason) {
          record.outcome = 'skipped';
          record.note = `!!! disk-full SKIPPED: ${deployment.disk.skipReason} !!!`;
          return;
        }
        // What the router's stores refuse while the disk is full, they say; once the disk has room
        // the router must store what waited by itself (protocol §11.1, §11.8): the fault is healed
        // when it says so. (A store may take some rows while the disk is full, in pages it frees.)
        const refused = { history: false, events: false };
        const waiting = { history: false, events: false };
        const stopWatching = deployment.broker.onLine((line) => {
          for (const store of ['history', 'events'] as const) {
            if (REFUSED[store].test(line)) refused[store] = waiting[store] = true;
            if (CAUGHT_UP[store].test(line)) waiting[store] = false;
          }
        });
        try {
          record.filledBytes = deployment.disk.fill();
          await hold();
        } finally {
          deployment.disk.free();
        }
        try {
          const late: string[] = [];
          await Promise.all(
            (['history', 'events'] as const)
              .filter((store) => waiting[store])
              .map((store) => deployment.broker.nextLine(CAUGHT_UP[store], DISK_CATCH_UP_MS).catch(() => void late.push(store))),
          );
          record.note = `refused: ${(['history', 'events'] as const).filter((store) => refused[store]).join(' and ') || 'nothing'}`;
          if (late.length > 0) throw new Error(`the disk was freed, but the ${late.join(' and ')} that waited were not stored within ${DISK_CATCH_UP_MS / 1000} s (relais start did not say so)`);
        } finally {
          stopWatching();
        }
        return;
      }
      case 'policy-broken': {
        record.policy = await breakPolicy({ broker: deployment.broker, policyFile: deployment.policyFile, variant: fault.params!.variant!, holdMs: fault.durationMs, probe: () => deployment.probePolicy() });
        const { refused, keptOld, restored } = record.policy;
        if (!refused || !keptOld || !restored) record.note = `refused ${refused}, old policy kept ${keptOld}, good one reloaded ${restored}`;
        return;
      }
      case 'net-cut':
        record.note = `${deployment.proxies.get(fault.target)!.cut()} connection(s) cut`;
        return;
      case 'net-partition': {
        const proxy = deployment.proxies.get(fault.target)!;
        proxy.refuse = true;
        proxy.cut();
        try {
          await hold();
        } finally {
          proxy.refuse = false;
        }
        return;
      }
      case 'net-stall':
        return this.while(fault, (proxy, on) => proxy.setStall(on));
      case 'net-latency':
        return this.while(fault, (proxy, on) => proxy.setLatency(on ? { latencyMs: fault.params!.latencyMs!, jitterMs: fault.params!.jitterMs! } : undefined));
      case 'net-slow-read':
        return this.while(fault, (proxy, on) => proxy.setSlowRead(on ? { bytesPerSecond: fault.params!.bytesPerSecond! } : undefined));
    }
  }

  private async while(fault: Fault, set: (proxy: NonNullable<ReturnType<Deployment['proxies']['get']>>, on: boolean) => void): Promise<void> {
    const proxy = this.deployment.proxies.get(fault.target)!;
    set(proxy, true);
    try {
      await sleep(fault.durationMs);
    } finally {
      set(proxy, false);
    }
  }
}
