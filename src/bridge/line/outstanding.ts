/**
 * Bus commands delivered to the MVP peer and not answered yet. MVP messages carry no token, so
 * a `reponse` is matched to the oldest outstanding command of its action for its requester
 * (the reponse's `destination`), first in first out; a reponse addressed to `tous` takes the
 * oldest of the action whoever asked. One addressed to a requester with nothing outstanding
 * matches nothing: giving it to another requester would hand them someone else's answer
 * (docs/bridges.md, "Which command a reponse answers"). Bounded by `max` entries.
 */
export interface OutstandingCommand {
  action: string;
  requester: string;
  token: string;
  /** A reponse for it: `final` false for a step (`status: "started"`), true for the end. */
  answer(data: unknown, final: boolean): void;
}

export class Outstanding {
  private readonly byAction = new Map<string, OutstandingCommand[]>();
  private count = 0;

  constructor(readonly max: number) {}

  get size(): number {
    return this.count;
  }

  /** False when `max` commands are already waiting: the caller refuses the new one. */
  add(command: OutstandingCommand): boolean {
    if (this.count >= this.max) return false;
    const queue = this.byAction.get(command.action);
    if (queue) queue.push(command);
    else this.byAction.set(command.action, [command]);
    this.count += 1;
    return true;
  }

  /** The command a reponse for `action` addressed to `destination` (`*` for `tous`) answers, if any (not removed). */
  find(action: string, destination: string): OutstandingCommand | undefined {
    const queue = this.byAction.get(action);
    if (!queue) return undefined;
    return destination === '*' ? queue[0] : queue.find((command) => command.requester === destination);
  }

  /** Forgets a command: answered, cancelled, timed out, or the line closed. */
  remove(command: OutstandingCommand): void {
    const queue = this.byAction.get(command.action);
    const index = queue ? queue.indexOf(command) : -1;
    if (!queue || index < 0) return;
    queue.splice(index, 1);
    if (queue.length === 0) this.byAction.delete(command.action);
    this.count -= 1;
  }

  all(): OutstandingCommand[] {
    return [...this.byAction.values()].flat();
  }
}
