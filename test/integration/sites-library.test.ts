/**
 * What the library does about sites (protocol §13.4): a request to a client of a site whose
 * link is down fails at once with SiteUnreachableError, or waits with `waitForSite`; handler
 * choice passes such a client over; fan-out names it unreachable. Real embedded broker, real
 * library clients. The sites' retained topics (`relais/sites/<site>`, `/clients`) are published
 * here by a test peer that STANDS FOR A LINK: the real link (src/sites) is tested on its own and
 * end to end by the three-host test. The site's clients are plain clients on the same broker,
 * as the link makes them appear at the central (their presences carried, listed in the roster).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { NoHandlerError, SiteUnreachableError, siteClientsTopic, siteStatusTopic, type Bus, type SiteStatus } from '../../src/index.js';
import { notificationMessage } from '../../src/protocol/messages.js';
import { recordingLogger, setup, uniqueId, within, type Kit } from '../testkit/index.js';

const ACTION = 'demo/sites/work';

describe('sites in the library (protocol §13.4)', { timeout: 60_000 }, () => {
  let kit: Kit;
  let link: Bus;
  /** Calls each handler received, by its id. */
  const calls = new Map<string, number>();

  /** A client serving ACTION that counts what it ran. */
  async function handler(id: string, action = ACTION): Promise<Bus> {
    const bus = await kit.connect(id);
    await bus.handle(action, () => {
      calls.set(id, (calls.get(id) ?? 0) + 1);
      return { by: id };
    });
    return bus;
  }

  /** The link's stand-in: the retained status of `site`'s link, as the link's end publishes it. */
  function publishStatus(site: string, status: Partial<SiteStatus> & { status: 'up' | 'down' }): void {
    link.publish(siteStatusTopic(site), notificationMessage({ source: link.id, payload: { site, mode: 'pull', ...status }, priority: 'normal' }), { retain: true });
  }

  function publishRoster(site: string, clients: string[]): void {
    link.publish(siteClientsTopic(site), notificationMessage({ source: link.id, payload: { site, clients }, priority: 'normal' }), { retain: true });
  }

  /** Resolves once `bus` sees `site`'s link with `status` (undefined: not known). */
  async function sees(bus: Bus, site: string, status: 'up' | 'down' | undefined, roster?: string): Promise<void> {
    const matches = () => {
      const view = bus.sites().find((entry) => entry.site === site);
      return view?.status?.status === status && (roster === undefined || view?.roster?.clients.includes(roster) === true);
    };
    const signal = AbortSignal.timeout(10_000);
    while (!matches()) await once(bus.siteDirectory, 'change', { signal });
  }

  before(async () => {
    kit = await setup('aedes');
    link = await kit.connect(uniqueId('link-standin'));
  });
  after(async () => {
    // Retained topics outlive clients: cleared so that nothing leaks into another test of this broker.
    for (const site of ['poller-1', 'poller-2', 'poller-3', 'poller-4']) {
      link.publish(siteStatusTopic(site), '', { retain: true });
      link.publish(siteClientsTopic(site), '', { retain: true });
    }
    await kit?.cleanup();
  });

  it('sites - a request to a client of a site whose link is down fails at once with SiteUnreachableError, target given or chosen; nothing is sent', async () => {
    const member = uniqueId('agent-p1');
    await handler(member);
    const since = Date.UTC(2026, 11, 6, 4, 12, 3);
    publishRoster('poller-1', [member, 'site:poller-1']);
    publishStatus('poller-1', { status: 'down', since });
    const caller = await kit.connect(uniqueId('caller'));
    await sees(caller, 'poller-1', 'down', member);
    await caller.waitForHandler(ACTION, { target: member });

    const started = Date.now();
    const targeted = await caller.request(ACTION, {}, { target: member, timeout: 10_000 }).then(() => undefined, (error: unknown) => error);
    assert.ok(targeted instanceof SiteUnreachableError, `got ${String(targeted)}`);
    assert.ok(targeted instanceof NoHandlerError, 'code 3: who handles NoHandlerError handles it');
    assert.deepEqual(targeted.details, { site: 'poller-1', since });
    assert.equal(targeted.message, `site poller-1 is unreachable since 2026-12-06T04:12:03Z (its link is down): ${member} cannot be reached`);
    assert.ok(Date.now() - started < 2000, 'at once, not at the time-out');

    // The only provider is on the down site: the library's choice has nobody else.
    const chosen = await caller.request(ACTION, {}, { timeout: 10_000 }).then(() => undefined, (error: unknown) => error);
    assert.ok(chosen instanceof SiteUnreachableError && chosen.details.site === 'poller-1', `got ${String(chosen)}`);
    // The site's router, site:poller-1, is on that site too.
    const router = await caller.request('relais/history/get', {}, { target: 'site:poller-1', timeout: 10_000 }).then(() => undefined, (error: unknown) => error);
    assert.ok(router instanceof SiteUnreachableError, `got ${String(router)}`);
    assert.equal(calls.get(member) ?? 0, 0, 'nothing reached the handler');
  });

  it('sites - a client of another site, or of the central, is unaffected by a down site', async () => {
    const down = uniqueId('agent-p3');
    const other = uniqueId('agent-p2');
    const local = uniqueId('central-h');
    await Promise.all([handler(down), handler(other), handler(local)]);
    publishRoster('poller-3', [down]);
    publishStatus('poller-3', { status: 'down', since: Date.now() });
    publishRoster('poller-2', [other]);
    publishStatus('poller-2', { status: 'up', since: Date.now(), rttMs: 12 });
    const caller = await kit.connect(uniqueId('caller'));
    await sees(caller, 'poller-3', 'down', down);
    await sees(caller, 'poller-2', 'up', other);
    await caller.waitForHandler(ACTION, { target: other });
    await caller.waitForHandler(ACTION, { target: local });
    assert.deepEqual(await caller.request(ACTION, {}, { target: other, timeout: 10_000 }), { by: other });
    assert.deepEqual(await caller.request(ACTION, {}, { target: local, timeout: 10_000 }), { by: local });
    await assert.rejects(caller.request(ACTION, {}, { target: down, timeout: 10_000 }), SiteUnreachableError);
  });

  it('sites - handler choice passes over a client of a down site while another provider can be reached', async () => {
    const action = 'demo/sites/choice';
    const remote = uniqueId('agent-p4');
    const local = uniqueId('central-c');
    const served = new Map<string, number>();
    for (const id of [remote, local]) {
      const bus = await kit.connect(id);
      await bus.handle(action, () => {
        served.set(id, (served.get(id) ?? 0) + 1);
        return id;
      });
    }
    publishRoster('poller-4', [remote]);
    publishStatus('poller-4', { status: 'down', since: Date.now() });
    const caller = await kit.connect(uniqueId('caller'));
    await sees(caller, 'poller-4', 'down', remote);
    await caller.waitForHandler(action, { target: remote });
    await caller.waitForHandler(action, { target: local });
    const answers = await Promise.all(Array.from({ length: 8 }, () => caller.request(action, {}, { timeout: 10_000 })));
    assert.deepEqual(new Set(answers), new Set([local]), 'every request went to the reachable provider');
    assert.equal(served.get(remote) ?? 0, 0);

    // Its link up again: it takes its turn among the providers.
    publishStatus('poller-4', { status: 'up', since: Date.now() });
    await sees(caller, 'poller-4', 'up');
    const later = await Promise.all(Array.from({ length: 8 }, () => caller.request(action, {}, { timeout: 10_000 })));
    assert.ok(later.includes(remote), 'the site back up, its client is chosen again');

    // Fan-out: a client of a down site is named unreachable, at once, not waited for.
    publishStatus('poller-4', { status: 'down', since: Date.now() });
    await sees(caller, 'poller-4', 'down');
    const started = Date.now();
    const all = await caller.requestAll(action, {}, { timeout: 8000 });
    assert.ok(Date.now() - started < 4000, 'nobody waited for the time-out');
    assert.deepEqual(all.unreachable, [remote]);
    assert.deepEqual([all.absent, all.silent, all.missing], [[], [], [remote]]);
    assert.deepEqual(all.answers.find((answer) => answer.id === local), { id: local, ok: true, payload: local });
  });

  it('sites - waitForSite sends once the site is up again, and fails with SiteUnreachableError at its end otherwise', async () => {
    // An action only this client serves: the earlier tests' clients serve ACTION, and the library would choose them.
    const action = 'demo/sites/wait';
    const member = uniqueId('agent-p1w');
    await handler(member, action);
    publishRoster('poller-1', [member]);
    publishStatus('poller-1', { status: 'down', since: Date.now() });
    const caller = await kit.connect(uniqueId('caller'));
    await sees(caller, 'poller-1', 'down', member);
    await caller.waitForHandler(action, { target: member });

    // The link does not come back within the wait: the site is why it failed, at the wait's end, not the time-out's.
    const started = Date.now();
    const late = await caller.request(action, {}, { target: member, timeout: 20_000, waitForSite: 600 }).then(() => undefined, (error: unknown) => error);
    const waited = Date.now() - started;
    assert.ok(late instanceof SiteUnreachableError && late.details.site === 'poller-1', `got ${String(late)}`);
    assert.ok(waited >= 550 && waited < 10_000, `failed after ${waited} ms: at the end of waitForSite`);
    // A waitForSite beyond the time-out is cut to it, and the site is still the reason.
    const cut = await caller.request(action, {}, { target: member, timeout: 400, waitForSite: 60_000 }).then(() => undefined, (error: unknown) => error);
    assert.ok(cut instanceof SiteUnreachableError, `got ${String(cut)}`);
    assert.equal(calls.get(member) ?? 0, 0);

    // The link comes back while it waits: sent then, answered.
    const answer = caller.request(action, {}, { target: member, timeout: 20_000, waitForSite: 15_000 });
    const chosen = caller.request(action, {}, { timeout: 20_000, waitForSite: 15_000 });
    await new Promise((resolve) => setTimeout(resolve, 200)); // it is waiting, not failed
    assert.equal(calls.get(member) ?? 0, 0, 'nothing sent while the link is down');
    publishStatus('poller-1', { status: 'up', since: Date.now() });
    assert.deepEqual(await within(answer, 10_000, 'the answer once the site is up'), { by: member });
    assert.deepEqual(await within(chosen, 10_000, 'the answer of the chosen handler once the site is up'), { by: member });
    assert.equal(calls.get(member), 2);
  });

  it('sites - an invalid status is logged and ignored; a cleared one is forgotten', async () => {
    const member = uniqueId('agent-p1i');
    await handler(member);
    publishRoster('poller-1', [member]);
    publishStatus('poller-1', { status: 'down', since: Date.now() });
    const { logger, records, events } = recordingLogger();
    const caller = await kit.connect(uniqueId('caller'), { logger });
    await sees(caller, 'poller-1', 'down', member);
    await caller.waitForHandler(ACTION, { target: member });

    const invalidLogged = () => records().filter((record) => /invalid site status/.test(String(record.msg))).length;
    for (const payload of [{ site: 'poller-1', status: 'sideways', mode: 'pull' }, { site: 'poller-9', status: 'up', mode: 'pull' }, 'not an object']) {
      const before = invalidLogged();
      link.publish(siteStatusTopic('poller-1'), notificationMessage({ source: link.id, payload, priority: 'normal' }), { retain: true });
      const signal = AbortSignal.timeout(10_000);
      while (invalidLogged() === before) await once(events, 'line', { signal });
    }
    link.publish(siteStatusTopic('poller-1'), '{not json', { retain: true });
    const signal = AbortSignal.timeout(10_000);
    while (invalidLogged() < 4) await once(events, 'line', { signal });
    assert.equal(caller.sites().find((view) => view.site === 'poller-1')?.status?.status, 'down', 'the last valid status is kept');
    await assert.rejects(caller.request(ACTION, {}, { target: member, timeout: 10_000 }), SiteUnreachableError);

    // Cleared (an empty retained message): the status is forgotten, the client reachable as any other.
    link.publish(siteStatusTopic('poller-1'), '', { retain: true });
    await sees(caller, 'poller-1', undefined);
    assert.deepEqual(await caller.request(ACTION, {}, { target: member, timeout: 10_000 }), { by: member });
    link.publish(siteClientsTopic('poller-1'), '', { retain: true });
    const gone = AbortSignal.timeout(10_000);
    while (caller.sites().some((view) => view.site === 'poller-1')) await once(caller.siteDirectory, 'change', { signal: gone });
  });
});
