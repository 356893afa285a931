/**
 * Who is connected and which actions they serve, from the retained presence messages
 * every client publishes on `relais/presence/<id>` (protocol §7). Lets a request fail
 * fast with NoHandlerError and notices a handler's death (its Last Will).
 */
import { EventEmitter } from 'node:events';
import type { Envelope } from '../protocol/envelope.js';
import type { PresenceInfo } from './types.js';

export class Directory extends EventEmitter<{ gone: [clientId: string]; change: [clientId: string, info: PresenceInfo | undefined] }> {
  private readonly clients = new Map<string, PresenceInfo>();
  private readonly providersByAction = new Map<string, Set<string>>();

  /** Records a presence message; `undefined` means the retained presence was cleared. */
  update(clientId: string, envelope: Envelope | undefined): void {
    const info = envelope ? toPresence(envelope.payload) : undefined;
    const before = this.clients.get(clientId);
    if (before) for (const action of allActions(before)) this.providersByAction.get(action)?.delete(clientId);
    if (info) {
      this.clients.set(clientId, info);
      if (info.status === 'alive') {
        for (const action of allActions(info)) {
          let providers = this.providersByAction.get(action);
          if (!providers) this.providersByAction.set(action, (providers = new Set()));
          providers.add(clientId);
        }
      }
    } else {
      this.clients.delete(clientId);
    }
    this.emit('change', clientId, info);
    if (before?.status === 'alive' && info?.status !== 'alive') this.emit('gone', clientId);
  }

  /** Ids of the alive clients that announce `action`. */
  providers(action: string): ReadonlySet<string> {
    return this.providersByAction.get(action) ?? EMPTY;
  }

  serves(clientId: string, action: string): boolean {
    return this.providers(action).has(clientId);
  }

  get(clientId: string): PresenceInfo | undefined {
    return this.clients.get(clientId);
  }

  list(): Array<[string, PresenceInfo]> {
    return [...this.clients.entries()];
  }
}

const EMPTY: ReadonlySet<string> = new Set();

function allActions(info: PresenceInfo): string[] {
  return info.realtimeActions ? [...info.actions, ...info.realtimeActions] : info.actions;
}

function toPresence(payload: unknown): PresenceInfo | undefined {
  if (typeof payload !== 'object' || payload === null) return undefined;
  const candidate = payload as Partial<PresenceInfo>;
  if (candidate.status !== 'alive' && candidate.status !== 'stopped' && candidate.status !== 'dead') return undefined;
  const strings = (value: unknown) => (Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : []);
  return {
    ...candidate,
    status: candidate.status,
    actions: strings(candidate.actions),
    realtimeActions: strings(candidate.realtimeActions),
    since: typeof candidate.since === 'number' ? candidate.since : 0,
  };
}
