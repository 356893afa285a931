/**
 * What the routers do about sites (protocol §13.5): the central's router pulls a site's history
 * exactly once per row, under a per-site lock, freed by a time-out; its registry shows a site's
 * clients `unknown` while the link is down; `relais/sites/get` answers.
 *
 * The set-up, and why it is honest without the link (src/sites, tested on its own): a site's
 * router is reached from the central as the client `site:<site>` (protocol §13.3), and the
 * link's only part in a sync is to carry the command and its answer unchanged. So the site's
 * router here is a real `relais router` process with its own SQLite history, on the SAME
 * embedded broker, under the client id `site:poller-1`: the central's sync asks it exactly as
 * it asks through a link. What the link publishes on the central's broker (the retained status
 * `relais/sites/poller-1` and roster `relais/sites/poller-1/clients`, protocol §13.2) the test
 * publishes itself, in the link's wire form. Being on the same broker, the site's router records
 * the same live requests as the central's, with the same digests: those are the rows "recorded
 * live as they crossed the link", which the sync must not store twice.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { connect, type Bus, type HistoryRow } from '../../src/index.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import { startRouter, SqliteHistoryStore, type Router, type SitePage } from '../../src/router/index.js';
import { parseHistoryQuery, type HistoryPage } from '../../src/protocol/history.js';
import type { BusEvent } from '../../src/protocol/events.js';
import type { ClientDetailPayload, ClientListPayload } from '../../src/protocol/registry.js';
import { siteClientsTopic, siteStatusTopic, type SitesAnswer } from '../../src/protocol/sites.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { testLogger, within } from '../testkit/index.js';

const SITE = 'poller-1';
const SITE_ROUTER = fileURLToPath(new URL('../fixtures/site-router-process.ts', import.meta.url));

/** Resolves once `check()` holds (looked at every 20 ms), or fails naming `what` after 60 s (and stops looking). */
async function until(check: () => boolean | Promise<boolean>, what: string, timeout = 60_000): Promise<void> {
  const end = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`${what} did not happen within ${timeout} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
const SEEDED = 2500;

/** A history store that tells the test about each page of a site it writes (the rows asked for, and the position after them). */
class WatchedStore extends SqliteHistoryStore {
  readonly pages: Array<{ site: string; asked: number; position: number }> = [];
  onPage: ((page: SitePage) => void) | undefined;
  override async appendFromSite(site: string, page: SitePage): Promise<HistoryRow[]> {
    const added = await super.appendFromSite(site, page);
    this.pages.push({ site, asked: page.rows.length, position: page.position });
    this.onPage?.(page);
    return added;
  }
}

describe('sites: what the routers do (protocol §13.5)', { timeout: 300_000 }, () => {
  let dir: string;
  let broker: EmbeddedBroker;
  let store: WatchedStore;
  let central: Router;
  let siteDb: string;
  let siteRouter: ChildProcess | undefined;
  let siteOutput = '';
  let link: Bus;
  let ui: Bus;
  let agent: Bus;
  const events: BusEvent[] = [];
  const eventArrived = new Set<() => void>();

  /** Resolves with the first event (after `from`) that `match` accepts. */
  function nextEvent(match: (event: BusEvent) => boolean, what: string, from = events.length, timeout = 90_000): Promise<BusEvent> {
    return within(
      new Promise<BusEvent>((resolve) => {
        const check = () => {
          const found = events.slice(from).find(match);
          if (!found) return;
          eventArrived.delete(check);
          resolve(found);
        };
        eventArrived.add(check);
        check();
      }),
      timeout,
      what,
    );
  }
  const syncEnded = (from = events.length, site = SITE) => nextEvent((event) => event.type === 'site.sync' && event.data.site === site, `the end of a sync of ${site}`, from);

  /** What the link publishes on the central (protocol §13.2): a notification envelope, retained. */
  function publishAsLink(topic: string, payload: Record<string, unknown>): void {
    link.publish(topic, { v: 1, type: 'notification', source: link.id, destination: '*', ts: Date.now(), payload }, { retain: true });
  }
  const linkStatus = (site: string, status: 'up' | 'down', since = Date.now()) => publishAsLink(siteStatusTopic(site), { site, status, since, mode: 'pull' });

  function siteCount(sql = 'SELECT count(*) FROM history'): number {
    const db = new Database(siteDb, { readonly: true });
    try {
      return db.prepare(sql).pluck().get() as number;
    } finally {
      db.close();
    }
  }

  /** The site's router, a real router with its own SQLite history, in a process the test can kill. */
  async function startSiteRouter(): Promise<void> {
    const child = spawn(process.execPath, ['--import', 'tsx', SITE_ROUTER, broker.url!, SITE, siteDb], { stdio: ['ignore', 'pipe', 'pipe'] });
    siteRouter = child;
    child.stderr!.on('data', (chunk: Buffer) => (siteOutput += chunk));
    await within(
      new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (chunk: Buffer) => String(chunk).includes('READY') && resolve());
        child.once('exit', (code) => reject(new Error(`the site router exited (${code}) before it was ready: ${siteOutput}`)));
      }),
      60_000,
      'the site router ready',
    );
    await ui.waitForHandler('relais/history/get', { target: `site:${SITE}`, timeout: 60_000 });
  }

  /** Kills the site's router (kill -9) and waits for its end. */
  async function killSiteRouter(): Promise<void> {
    const child = siteRouter;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-site-sync-'));
    siteDb = path.join(dir, 'site', 'history.db');
    fs.mkdirSync(path.dirname(siteDb));
    // The site's history holds rows the central never saw (recorded while the link was down).
    const seed = new SqliteHistoryStore(siteDb);
    await seed.append(
      Array.from({ length: SEEDED }, (_, i) => ({ token: `seed-${i}`, kind: 'command' as const, action: 'demo/seed', source: 'agent-p1', target: 'local-ui', etime: 1_000 + i, data: `{"i":${i}}`, size: 8, truncated: false, digest: `seed:${i}` })),
    );
    await seed.close();
    broker = await startEmbeddedBroker({ port: 0 });
    store = new WatchedStore(path.join(dir, 'central-history.db'));
    central = await startRouter({ stream: () => broker.connectInProcess(), database: path.join(dir, 'central', 'history.db'), historyStore: store, site: 'central', persistentSession: false, siteSyncIntervalMs: 3_600_000, siteSyncTimeoutMs: 20_000, logger: testLogger });
    link = await connect({ id: `link-${SITE}`, broker: broker.url!, realtimeLane: false, logger: testLogger });
    ui = await connect({ id: 'ui', broker: broker.url!, realtimeLane: false, logger: testLogger });
    agent = await connect({ id: 'agent-p1', broker: broker.url!, realtimeLane: false, logger: testLogger });
    await agent.handle('demo/echo', (payload) => ({ echo: payload }));
    await ui.subscribe('relais/events/notification', (message) => {
      for (const event of (message.envelope.payload as { events: BusEvent[] }).events) if (event.type.startsWith('site.')) events.push(event);
      for (const check of [...eventArrived]) check();
    });
    await startSiteRouter();
  });

  after(async () => {
    await killSiteRouter();
    await Promise.all([link, ui, agent].map((bus) => bus?.close()));
    await central?.close();
    store?.close();
    await broker?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('sync - every row of the site arrives once, those the central recorded live included; the lag is 0 after, and a sync again stores nothing', async () => {
    // Live requests to the site's agent: both routers record them, with the same digests.
    const tokens: string[] = [];
    for (let i = 0; i < 3; i++) {
      for await (const step of ui.call('demo/echo', { i }, { target: 'agent-p1' })) tokens.push(step.token);
    }
    const live = [...new Set(tokens)];
    const recorded = async () =>
      (await Promise.all(live.map(async (token) => siteCount(`SELECT count(*) FROM history WHERE token = '${token}' AND kind = 'final'`) === 1 && (await store.query(parseHistoryQuery({ token, kind: 'final' }))).rows.length === 1))).every(Boolean);
    await until(recorded, 'both routers recording the live requests');
    const centralBefore = await store.count();
    let liveAtCentral = 0;
    for (const token of live) liveAtCentral += (await store.query(parseHistoryQuery({ token, limit: 100 }))).rows.length;

    const from = events.length;
    publishAsLink(siteClientsTopic(SITE), { site: SITE, clients: ['agent-p1', `site:${SITE}`] });
    linkStatus(SITE, 'up');
    const synced = await syncEnded(from);
    const siteTotal = siteCount();
    const siteNewest = siteCount('SELECT max(id) FROM history');
    assert.equal(synced.data.outcome, 'done', JSON.stringify(synced.data));
    assert.equal(synced.data.rows, siteTotal - liveAtCentral, 'only the rows the central did not record live are new');
    assert.deepEqual([synced.data.position, synced.data.lag], [siteNewest, 0]);
    assert.equal(await store.count(), centralBefore + siteTotal - liveAtCentral, 'nothing stored twice');
    const ofSite = (await store.query(parseHistoryQuery({ site: SITE, limit: 10_000 }))).rows;
    assert.equal(ofSite.length, siteTotal, "every row of the site's history is in the central's, once, with its site");
    assert.equal(new Set(ofSite.map((row) => `${row.token}:${row.kind}:${row.source}:${row.etime}`)).size, siteTotal);
    assert.ok(ofSite.some((row) => row.token === live[0] && row.kind === 'command'), 'a row recorded live now says the site holds it');
    assert.deepEqual(
      store.pages.filter((page) => page.site === SITE).map((page) => page.asked),
      [1000, 1000, siteTotal - 2000],
      'pages of 1,000',
    );

    const again = syncEnded();
    await central.siteSync.trigger(SITE);
    const second = (await again).data;
    assert.deepEqual([second.outcome, second.rows], ['done', 0], JSON.stringify(second));
    assert.equal(await store.count(), centralBefore + siteTotal - liveAtCentral);
  });

  it('sync - the site router killed mid-sync: the next sync, after the link is back, goes on from the stored position, nothing doubled', async () => {
    // New rows on the site: 5 pages to pull.
    const more = new SqliteHistoryStore(siteDb);
    await more.append(Array.from({ length: 5000 }, (_, i) => ({ token: `late-${i}`, kind: 'command' as const, action: 'demo/seed', source: 'agent-p1', etime: 9_000 + i, data: '{}', size: 2, truncated: false, digest: `late:${i}` })));
    await more.close();
    const siteTotal = siteCount();
    const pagesBefore = store.pages.length;
    const positionBefore = (await store.siteSyncs())[SITE]!.position;
    // The first page is stored: the site's router dies (kill -9) before it answers the next.
    store.onPage = () => {
      store.onPage = undefined;
      siteRouter!.kill('SIGKILL');
    };
    const cut = syncEnded();
    void central.siteSync.trigger(SITE);
    const interrupted = (await cut).data;
    assert.notEqual(interrupted.outcome, 'done', JSON.stringify(interrupted));
    const stopped = (await store.siteSyncs())[SITE]!.position;
    assert.ok(stopped > positionBefore && stopped < siteCount('SELECT max(id) FROM history'), `stopped part-way: ${positionBefore} < ${stopped}`);
    assert.equal(interrupted.position, stopped);

    // The site restarts: its link goes down and comes back up, which starts a sync.
    await killSiteRouter();
    await startSiteRouter();
    linkStatus(SITE, 'down');
    const resumed = syncEnded();
    linkStatus(SITE, 'up');
    const done = (await resumed).data;
    assert.equal(done.outcome, 'done', JSON.stringify(done));
    const askedAfterRestart = store.pages.slice(pagesBefore + 1).reduce((sum, page) => sum + page.asked, 0);
    assert.equal(askedAfterRestart, siteCount(`SELECT count(*) FROM history WHERE id > ${stopped}`), 'the rows after the stored position, not from the start');
    assert.equal((await store.query(parseHistoryQuery({ site: SITE, limit: 10_000 }))).rows.length, siteTotal, 'every row once');
    assert.equal(done.lag, 0);
  });

  /** Two routers serve the registry here (the central's and the site's, as `site:poller-1`): these questions are for the central's. */
  const CENTRAL_ROUTER = { target: 'relais-router' };

  it('registry - the clients of a site are unknown while its link is down, with since when, and back to their presence when it is up; a revision each time', async () => {
    const detail = async () => (await ui.request<ClientDetailPayload>('relais/clients/detail/get', { id: 'agent-p1' }, CENTRAL_ROUTER)).clients['agent-p1']!;
    /** The registry's detail of agent-p1 once `match` accepts it (asked again every 20 ms, for at most 10 s). */
    const detailWhen = async (match: (now: Awaited<ReturnType<typeof detail>>) => boolean, what: string) => {
      let now = await detail();
      const end = Date.now() + 10_000;
      while (!match(now)) {
        if (Date.now() > end) throw new Error(`${what} did not happen within 10000 ms: ${JSON.stringify(now)}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
        now = await detail();
      }
      return now;
    };
    const up = await detail();
    assert.deepEqual([up.status, up.site], ['alive', SITE]);
    assert.ok(up.actions.includes('demo/echo'));
    const before = (await ui.request<ClientListPayload>('relais/clients/list/get', {}, CENTRAL_ROUTER)).revision;
    const since = Date.UTC(2026, 11, 6, 4, 12, 3);
    const from = events.length;
    linkStatus(SITE, 'down', since);
    await nextEvent((event) => event.type === 'site.down' && event.data.site === SITE, 'site.down', from);
    const down = await detailWhen((now) => now.status === 'unknown', 'agent-p1 unknown');
    assert.equal(down.reason, 'site poller-1 unreachable since 2026-12-06T04:12:03.000Z');
    assert.deepEqual([down.site, down.actions, 'connectedSince' in down], [SITE, [], false]);
    const list = await ui.request<ClientListPayload>('relais/clients/list/get', {}, CENTRAL_ROUTER);
    assert.ok(list.revision > before);
    assert.deepEqual([list.clients['agent-p1']!.status, list.clients['agent-p1']!.site], ['unknown', SITE]);
    assert.equal(list.clients['ui']!.status, 'alive', 'a client of the central is not touched');
    assert.equal('site' in list.clients['ui']!, false);

    linkStatus(SITE, 'up');
    await nextEvent((event) => event.type === 'site.up' && event.data.site === SITE, 'site.up', from);
    const back = await detailWhen((now) => now.status === 'alive', 'agent-p1 alive again');
    assert.deepEqual([back.site, back.connectedSince, 'reason' in back], [SITE, up.connectedSince, false]);
    const after = await ui.request<ClientListPayload>('relais/clients/list/get', {}, CENTRAL_ROUTER);
    assert.ok(after.revision > list.revision, `revision ${after.revision} after, ${list.revision} before: ${JSON.stringify(after.clients['agent-p1'])}`);
  });

  it('relais/sites/get - each link with its status, clients and, on the central, where its history stands', async () => {
    // A periodic sync may be running at the moment of asking (a loaded machine): ask again once it has ended.
    let answer = await ui.request<SitesAnswer>('relais/sites/get', {}, { target: 'relais-router' });
    for (const deadline = Date.now() + 30_000; answer.sites[SITE]?.sync?.runningSince !== undefined && Date.now() < deadline; ) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      answer = await ui.request<SitesAnswer>('relais/sites/get', {}, { target: 'relais-router' });
    }
    assert.equal(answer.site, 'central');
    const entry = answer.sites[SITE]!;
    assert.deepEqual([entry.status, entry.mode, entry.clients], ['up', 'pull', ['agent-p1', `site:${SITE}`]]);
    assert.equal(entry.sync!.position, siteCount('SELECT max(id) FROM history'));
    assert.deepEqual([entry.sync!.lag, entry.sync!.lastSync!.outcome], [0, 'done']);
    assert.equal(entry.sync!.runningSince, undefined);
    // The site's own router answers too: it sees the same link (here), and pulls nothing.
    const atSite = await ui.request<SitesAnswer>('relais/sites/get', { site: SITE }, { target: `site:${SITE}` });
    assert.equal(atSite.site, SITE);
    assert.equal(atSite.sites[SITE]!.sync, undefined);
    await assert.rejects(ui.request('relais/sites/get', { colour: 'red' }, { target: 'relais-router' }), /colour/);
  });

  it('sync - a sync whose answers hang is freed by the time-out and tried again from the same position, its lock held by one sync at a time', async () => {
    // A site whose router takes the question and never answers, until released.
    const hanging = 'poller-2';
    const siteStore = new SqliteHistoryStore(path.join(dir, 'poller-2.db'));
    await siteStore.append(Array.from({ length: 30 }, (_, i) => ({ token: `p2-${i}`, kind: 'command' as const, action: 'demo/x', source: 'agent-p2', etime: i, data: '{}', size: 2, truncated: false, digest: `p2:${i}` })));
    const siteBus = await connect({ id: `site:${hanging}`, broker: broker.url!, realtimeLane: false, logger: testLogger });
    let asked = 0;
    let release: (() => void) | undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    let hang = true;
    await siteBus.handle('relais/history/get', async (payload, ctx): Promise<HistoryPage> => {
      // The central of the other tests pulls this site too: only the quick router's questions are this test's.
      if (ctx.source !== 'central-2') throw new Error('not asked by the router under test');
      asked += 1;
      if (hang) {
        await new Promise<void>((resolve, reject) => {
          void released.then(resolve);
          ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
        });
      }
      return await siteStore.query(parseHistoryQuery(payload));
    });
    await ui.waitForHandler('relais/history/get', { target: `site:${hanging}` });
    // A router of its own with a short time-out and interval: the interval fires while a sync holds the lock.
    const quick = await startRouter({
      id: 'relais-router-2',
      stream: () => broker.connectInProcess(),
      database: path.join(dir, 'quick', 'history.db'),
      site: 'central-2',
      persistentSession: false,
      siteSyncIntervalMs: 300,
      siteSyncTimeoutMs: 1500,
      logger: testLogger,
    });
    const quickSyncs: BusEvent[] = [];
    const watcher = await connect({ id: 'watcher', broker: broker.url!, realtimeLane: false, logger: testLogger });
    await watcher.subscribe('relais/events/notification', (message) => {
      if (message.envelope.source !== 'relais-router-2') return;
      for (const event of (message.envelope.payload as { events: BusEvent[] }).events) if (event.type === 'site.sync' && event.data.site === hanging) quickSyncs.push(event);
    });
    try {
      publishAsLink(siteClientsTopic(hanging), { site: hanging, clients: [`site:${hanging}`] });
      linkStatus(hanging, 'up');
      await until(() => quickSyncs.filter((event) => event.data.outcome === 'timeout').length >= 2, 'two timed-out syncs');
      // Each sync held the lock ~1.5 s while the interval fired every 0.3 s: none started beside it.
      assert.ok(quickSyncs.every((event) => event.data.outcome === 'timeout' && (event.data.ms as number) >= 1400), JSON.stringify(quickSyncs));
      // Each sync asked once (its first question hung), a next one may have just begun: the
      // interval's ticks while the lock was held started nothing.
      assert.ok(asked >= quickSyncs.length && asked <= quickSyncs.length + 1, `${asked} questions for ${quickSyncs.length} syncs`);
      const states = (await ui.request<SitesAnswer>('relais/sites/get', { site: hanging }, { target: 'relais-router-2' })).sites[hanging]!.sync!;
      assert.deepEqual([states.position, states.lastSync!.outcome], [0, 'timeout']);

      hang = false;
      release!();
      await until(() => quickSyncs.some((event) => event.data.outcome === 'done'), 'a sync that ends');
      const done = quickSyncs.find((event) => event.data.outcome === 'done')!.data;
      assert.deepEqual([done.rows, done.lag], [30, 0], 'retried from position 0: every row, once');
      assert.equal((await quick.historyStore.query(parseHistoryQuery({ site: hanging, limit: 100 }))).rows.length, 30);
      // Syncs end one after another: each started after the previous one ended.
      const ends = quickSyncs.map((event) => event.time);
      const spans = quickSyncs.map((event, i) => [ends[i]! - (event.data.ms as number), ends[i]!] as const);
      for (let i = 1; i < spans.length; i++) assert.ok(spans[i]![0] >= spans[i - 1]![1] - 100, `sync ${i} overlaps sync ${i - 1}: ${JSON.stringify(spans)}`);
    } finally {
      await watcher.close();
      await quick.close();
      await siteBus.close();
      await siteStore.close();
    }
  });
});
