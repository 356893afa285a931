/**
 * The client's typed events (`bus.on('offline', …)`, `directory.on('gone', …)`) in any runtime:
 * browsers have no node:events. It has the methods of Node's EventEmitter, so that Node's
 * `events.once(bus, 'online')` and `events.on()` take it as one. As with Node's, listeners run
 * in the order they were added, synchronously, and a throw reaches `emit`'s caller.
 */
type Listener<Args extends unknown[]> = (...args: Args) => void;
type AnyListener = (...args: never[]) => void;
type Entry = { listener: AnyListener; once: boolean };

export class Emitter<Events extends { [event: string]: unknown[] }> {
  private readonly entries = new Map<keyof Events, Entry[]>();

  on<E extends keyof Events>(event: E, listener: Listener<Events[E]>): this {
    return this.add(event, listener, false, false);
  }

  addListener<E extends keyof Events>(event: E, listener: Listener<Events[E]>): this {
    return this.add(event, listener, false, false);
  }

  prependListener<E extends keyof Events>(event: E, listener: Listener<Events[E]>): this {
    return this.add(event, listener, false, true);
  }

  once<E extends keyof Events>(event: E, listener: Listener<Events[E]>): this {
    return this.add(event, listener, true, false);
  }

  prependOnceListener<E extends keyof Events>(event: E, listener: Listener<Events[E]>): this {
    return this.add(event, listener, true, true);
  }

  /** Removes one registration of `listener`: the latest, as Node does. */
  off<E extends keyof Events>(event: E, listener: Listener<Events[E]>): this {
    const entry = this.entries.get(event)?.findLast((candidate) => candidate.listener === (listener as unknown));
    if (entry) this.remove(event, entry);
    return this;
  }

  removeListener<E extends keyof Events>(event: E, listener: Listener<Events[E]>): this {
    return this.off(event, listener);
  }

  removeAllListeners(event?: keyof Events): this {
    if (event === undefined) this.entries.clear();
    else this.entries.delete(event);
    return this;
  }

  /** Calls the listeners of `event` registered now, in order; true when there were some. */
  emit<E extends keyof Events>(event: E, ...args: Events[E]): boolean {
    const list = this.entries.get(event);
    if (!list) return false;
    for (const entry of [...list]) {
      if (entry.once) this.remove(event, entry);
      (entry.listener as unknown as Listener<Events[E]>)(...args);
    }
    return true;
  }

  listeners<E extends keyof Events>(event: E): Array<Listener<Events[E]>> {
    return (this.entries.get(event) ?? []).map((entry) => entry.listener as unknown as Listener<Events[E]>);
  }

  rawListeners<E extends keyof Events>(event: E): Array<Listener<Events[E]>> {
    return this.listeners(event);
  }

  listenerCount(event: keyof Events): number {
    return this.entries.get(event)?.length ?? 0;
  }

  eventNames(): Array<keyof Events> {
    return [...this.entries.keys()];
  }

  /** No limit is enforced; kept for Node's EventEmitter interface. */
  setMaxListeners(_count: number): this {
    return this;
  }

  getMaxListeners(): number {
    return Infinity;
  }

  private remove(event: keyof Events, entry: Entry): void {
    const list = this.entries.get(event);
    const at = list?.indexOf(entry) ?? -1;
    if (at < 0) return;
    list!.splice(at, 1);
    if (list!.length === 0) this.entries.delete(event);
  }

  private add<E extends keyof Events>(event: E, listener: Listener<Events[E]>, once: boolean, first: boolean): this {
    const list = this.entries.get(event) ?? [];
    const entry = { listener: listener as unknown as AnyListener, once };
    if (first) list.unshift(entry);
    else list.push(entry);
    this.entries.set(event, list);
    return this;
  }
}
