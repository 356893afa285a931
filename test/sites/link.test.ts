/**
 * The link between a site and its central (protocol §13.2), in one process: two embedded
 * brokers (the central's and the site's), the link dialling through a WAN proxy the test
 * controls, in pull mode (the site dials) and push mode (the central dials); security off.
 * Library clients on each broker act as users would.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import { CancelledError, connect, generateSealingKey, loadSealingKeys, readSealingPrivateKey, type Bus, type HandlerContext } from '../../src/index.js';
import { generateSigningKey, loadSigningKeys, readPrivateKey } from '../../src/security/signing-keys.js';
import { decode } from '../../src/protocol/envelope.js';
import { siteClientsTopic, siteStatusTopic, type LinkMode, type SiteClients, type SiteStatus } from '../../src/protocol/sites.js';
import { presenceTopic } from '../../src/protocol/topics.js';
import type { SiteLink } from '../../src/sites/link.js';
import { openDownlink, openUplink } from '../../src/sites/links.js';
import { SUITE_TIMEOUT, testLogger, waitFor, within } from '../testkit/index.js';
import { startWanProxy, type WanProxy } from '../testkit/wan-proxy.js';

const SITE = 'poller-1';
const WAIT = 20_000;

/** A plain MQTT client on a broker that keeps the last message of every topic it sees; `events` emits `message`. */
async function watch(url: string, filters: string[]) {
  const client = mqtt.connect(url, { clientId: `watch-${process.pid}-${Math.random().toString(36).slice(2)}`, protocolVersion: 4, log: () => {} } as mqtt.IClientOptions);
  const latest = new Map<string, Buffer>();
  const seen: Array<{ topic: string; payload: Buffer }> = [];
  const events = new EventEmitter();
  client.on('message', (topic, payload) => {
    latest.set(topic, payload);
    seen.push({ topic, payload });
    events.emit('message');
  });
  await new Promise((resolve) => client.once('connect', resolve));
  await client.subscribeAsync(filters, { qos: 1 });
  const payloadOf = <T>(topic: string): T | undefined => {
    const bytes = latest.get(topic);
    if (!bytes || bytes.length === 0) return undefined;
    const decoded = decode(bytes);
    return decoded.ok ? (decoded.envelope.payload as T) : undefined;
  };
  return {
    client,
    latest,
    seen,
    events,
    payloadOf,
    /** Resolves with `check()` once it is defined, re-checked at each message. */
    until<T>(check: () => T | undefined, what: string, timeout = WAIT): Promise<T> {
      return waitFor(check, events, 'message', timeout).catch((error: Error) => {
        throw new Error(`${what}: ${error.message}`);
      });
    },
    close: () => client.endAsync(true),
  };
}
type Watch = Awaited<ReturnType<typeof watch>>;

/** Waits until `bus` knows a handler of `action`; the error names the client that waited. */
async function handlerSeen(bus: Bus, action: string): Promise<void> {
  await bus.waitForHandler(action, { timeout: WAIT }).catch((error: Error) => {
    throw new Error(`${bus.id}: ${error.message}`, { cause: error });
  });
}

function linkTests(mode: LinkMode): void {
  describe(`sites - the link in ${mode} mode`, { timeout: SUITE_TIMEOUT }, () => {
    let central: EmbeddedBroker;
    let site: EmbeddedBroker;
    let wan: WanProxy;
    let link: SiteLink;
    let atCentral: Watch;
    const logLines: string[] = [];
    const buses: Bus[] = [];
    const client = async (where: EmbeddedBroker, id: string, extra: { ephemeral?: boolean } = {}) => {
      const bus = await connect({ id, broker: where.url!, logger: testLogger, ...extra });
      buses.push(bus);
      return bus;
    };

    const openLink = () => {
      const log = { info: (line: string) => logLines.push(line), warn: (line: string) => logLines.push(line) };
      const options = { wan: { url: wan.url }, notifications: ['demo/#'], log };
      return mode === 'pull' ? openUplink(site, SITE, options) : openDownlink(central, 'central', SITE, options);
    };

    before(async () => {
      central = await startEmbeddedBroker({ port: 0, log: () => {} });
      site = await startEmbeddedBroker({ port: 0, log: () => {} });
      // A WAN of 20 ± 10 ms each way between the end that dials and the other.
      wan = await startWanProxy((mode === 'pull' ? central : site).port!, { toTarget: { ms: 20, jitterMs: 10 }, fromTarget: { ms: 20, jitterMs: 10 } });
      atCentral = await watch(central.url!, ['relais/presence/+', 'relais/sites/#', 'demo/#']);
      link = openLink();
      await atCentral.until(() => atCentral.payloadOf<SiteStatus>(siteStatusTopic(SITE))?.status === 'up' || undefined, 'the link up at the central');
    });

    after(async () => {
      await Promise.all(buses.map((bus) => bus.close()));
      await link.stop();
      await atCentral.close();
      await wan.close();
      await central.close();
      await site.close();
    });

    it('call - a requester on the central gets the progress and the answer of a handler on the site', async () => {
      const agent = await client(site, 'agent-p1');
      await agent.handle('demo/install', async (payload: { name: string }, ctx: HandlerContext) => {
        for (const fraction of [0.25, 0.5]) ctx.progress(fraction, { step: `installing ${payload.name}` });
        await new Promise((resolve) => setImmediate(resolve));
        return { installed: payload.name, on: SITE };
      });
      const ops = await client(central, 'ops-1');
      await handlerSeen(ops, 'demo/install');
      const transcript: string[] = [];
      for await (const step of ops.call('demo/install', { name: 'weather' }, { target: 'agent-p1', timeout: WAIT })) {
        if (step.kind === 'progress') transcript.push(`progress ${step.progress}`);
        else if (step.kind === 'final') transcript.push(`final ${step.code} ${JSON.stringify(step.payload)}`);
      }
      assert.deepEqual(transcript, ['progress 0.25', 'progress 0.5', 'final 0 {"installed":"weather","on":"poller-1"}']);
      // Untargeted too: the site's handler is a provider like any other.
      assert.deepEqual(await ops.request('demo/install', { name: 'clock' }, { timeout: WAIT }), { installed: 'clock', on: SITE });
    });

    it('sealed and signed - a request sealed for a site handler and signed crosses the link byte for byte and opens at the far end; the answer comes back sealed', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-sites-sealed-'));
      const atSite = await watch(site.url!, ['demo/sealed/#']);
      try {
        const ids = { agent: `agent-sealed-${mode}`, ops: `ops-sealed-${mode}` };
        const signingFile = path.join(dir, 'signing-keys.json');
        const sealingFile = path.join(dir, 'sealing-keys.json');
        for (const id of Object.values(ids)) {
          generateSigningKey(signingFile, id, dir);
          generateSealingKey(sealingFile, id, dir);
        }
        const secured = async (where: EmbeddedBroker, id: string) => {
          const bus = await connect({
            id,
            broker: where.url!,
            logger: testLogger,
            signing: { privateKey: readPrivateKey(path.join(dir, `${id}.key`)) },
            verify: { keys: loadSigningKeys(signingFile), require: false },
            sealing: { privateKey: readSealingPrivateKey(path.join(dir, `${id}.sealing.key`)), keys: loadSealingKeys(sealingFile) },
          });
          buses.push(bus);
          return bus;
        };
        const secret = `sealed-across-${mode}-${process.pid}`;
        const agent = await secured(site, ids.agent);
        const opened: Array<{ payload: unknown; sealed: boolean }> = [];
        await agent.handle(
          'demo/sealed/echo',
          (payload: { secret: string }, ctx: HandlerContext) => {
            opened.push({ payload, sealed: ctx.sealed });
            return { back: payload.secret, on: SITE };
          },
          { sealed: 'require' },
        );
        const ops = await secured(central, ids.ops);
        await handlerSeen(ops, 'demo/sealed/echo');
        const answer = await ops.request('demo/sealed/echo', { secret }, { target: ids.agent, seal: true, timeout: WAIT });
        assert.deepEqual(answer, { back: secret, on: SITE });
        assert.deepEqual(opened, [{ payload: { secret }, sealed: true }], 'the handler on the site opened it');
        // Signed messages that fail are refused even with require off: none was (the link changed no byte).
        const refused = (bus: Bus) => Object.entries(bus.signatures.refused ?? {}).filter(([reason, count]) => reason !== 'unsigned' && count > 0);
        assert.deepEqual([...refused(ops), ...refused(agent)], [], 'no signed message refused on either side');
        assert.ok((ops.signatures.verified ?? 0) > 0 && (agent.signatures.verified ?? 0) > 0, 'each side verified the other\'s messages');
        // What crossed: the same bytes at both ends, sealed and signed, no plaintext on either broker.
        const commandTopic = (topic: string) => topic.startsWith('demo/sealed/echo/request');
        const sent = atCentral.seen.find((message) => commandTopic(message.topic))!;
        const arrived = await atSite.until(() => atSite.seen.find((message) => commandTopic(message.topic)), 'the command at the site');
        assert.ok(sent.payload.equals(arrived.payload), 'the link forwards the sealed command byte for byte');
        const header = JSON.parse(sent.payload.subarray(0, sent.payload.indexOf(0x0a)).toString('utf8')) as Record<string, unknown>;
        assert.ok(header.seal && header.sig, 'sealed and signed');
        const final = await atCentral.until(() => atCentral.seen.find((message) => message.topic.startsWith('demo/sealed/echo/response') && message.payload.includes('"final":true')), 'the final at the central');
        assert.ok(final.payload.includes('"seal":'), 'the answer came back sealed');
        for (const message of [...atCentral.seen, ...atSite.seen]) assert.ok(!message.payload.includes(secret), `no plaintext on ${message.topic}`);
      } finally {
        await atSite.close();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('cancel - aborting a request on the central aborts the handler on the site', async () => {
      let started!: () => void;
      const handlerStarted = new Promise<void>((resolve) => (started = resolve));
      let aborted!: (reason: unknown) => void;
      const handlerAborted = new Promise((resolve) => (aborted = resolve));
      const agent = await client(site, 'agent-long');
      await agent.handle('demo/long', (_payload, ctx) => {
        ctx.signal.addEventListener('abort', () => aborted(ctx.signal.reason));
        started();
        return new Promise(() => {});
      });
      const ops = await client(central, 'ops-2');
      await handlerSeen(ops, 'demo/long');
      const controller = new AbortController();
      const request = ops.request('demo/long', {}, { target: 'agent-long', signal: controller.signal, timeout: 60_000 });
      await within(handlerStarted, WAIT, 'the handler on the site starting');
      controller.abort();
      await assert.rejects(request, CancelledError);
      const reason = await within(handlerAborted, WAIT, 'the handler on the site aborted');
      assert.match((reason as Error).message, /cancelled by the requester/);
    });

    it('presence - the site clients, its roster and the link status appear on the central', async () => {
      await client(site, 'agent-seen');
      const presence = await atCentral.until(() => atCentral.payloadOf<{ status: string }>(presenceTopic('agent-seen')), 'the presence of agent-seen at the central');
      assert.equal(presence.status, 'alive');
      const roster = await atCentral.until(() => {
        const clients = atCentral.payloadOf<SiteClients>(siteClientsTopic(SITE));
        return clients?.clients.includes('agent-seen') ? clients : undefined;
      }, 'agent-seen in the roster');
      assert.equal(roster.site, SITE);
      const status = await atCentral.until(() => {
        const value = atCentral.payloadOf<SiteStatus>(siteStatusTopic(SITE));
        return value?.rttMs !== undefined ? value : undefined;
      }, 'a status with a round trip', 30_000);
      assert.equal(status.status, 'up');
      assert.equal(status.mode, mode);
      // 20 ± 10 ms each way: a round trip of at least 20 ms.
      assert.ok(status.rttMs! >= 20, `round trip ${status.rttMs} ms`);
      assert.ok(status.carried!.up > 0 || status.carried!.down >= 0);
    });

    it('response - an answer between two clients of the site stays on the site', async () => {
      const agent = await client(site, 'agent-local');
      await agent.handle('demo/local', (payload: { n: number }) => payload.n);
      const localRequester = await client(site, 'local-req');
      await handlerSeen(localRequester, 'demo/local');
      assert.equal(await localRequester.request('demo/local', { n: 1 }, { target: 'agent-local', timeout: WAIT }), 1);
      // Then one from the central: it crosses after the local one would have, on the same connection.
      const ops = await client(central, 'ops-3');
      await handlerSeen(ops, 'demo/local');
      assert.equal(await ops.request('demo/local', { n: 2 }, { target: 'agent-local', timeout: WAIT }), 2);
      await atCentral.until(() => atCentral.seen.find(({ topic }) => topic === 'demo/local/response/ops-3'), 'the central requester\'s response seen at the central');
      assert.deepEqual(atCentral.seen.filter(({ topic }) => topic === 'demo/local/response/local-req'), [], 'the local response crossed the link');
    });

    it('duplicates - a site client with the id of a central client is not carried, and is listed as refused', async () => {
      const centralOne = await client(central, 'dup-1');
      const centralInstance = (await atCentral.until(() => atCentral.payloadOf<{ instance: string }>(presenceTopic('dup-1')), 'the central dup-1')).instance;
      // A round trip through the link after it: the link has read the central's dup-1 before the site's appears.
      const agent = await client(site, 'agent-dup-check');
      await agent.handle('demo/ping', () => 'pong');
      await handlerSeen(centralOne, 'demo/ping');
      assert.equal(await centralOne.request('demo/ping', {}, { target: 'agent-dup-check', timeout: WAIT }), 'pong');
      await client(site, 'dup-1');
      const roster = await atCentral.until(() => {
        const clients = atCentral.payloadOf<SiteClients>(siteClientsTopic(SITE));
        return clients?.refused?.some(({ id }) => id === 'dup-1') ? clients : undefined;
      }, 'dup-1 refused in the roster');
      assert.deepEqual(roster.refused!.find(({ id }) => id === 'dup-1'), { id: 'dup-1', reason: 'a client of the central has this id' });
      assert.ok(!roster.clients.includes('dup-1'));
      assert.equal(atCentral.payloadOf<{ instance: string }>(presenceTopic('dup-1'))?.instance, centralInstance, 'the central client keeps its presence');
      assert.ok(logLines.some((line) => /dup-1 is not carried to the central: a client of the central has this id/.test(line)), logLines.join('\n'));
    });

    it('leaving - a client that leaves while the link subscribes for a newcomer is cleared, and the link goes on carrying', async () => {
      const leaver = await client(site, 'agent-brief', { ephemeral: true });
      await atCentral.until(() => atCentral.payloadOf(presenceTopic('agent-brief')), 'agent-brief at the central');
      // The newcomer's actions make the link subscribe on the central (a WAN round trip in pull
      // mode); the leaver's empty presence reaches the link while that SUBSCRIBE is in flight.
      const newcomer = await client(site, 'agent-new');
      await newcomer.handle('demo/new', () => 'new');
      await leaver.close();
      const ops = await client(central, 'ops-4');
      await handlerSeen(ops, 'demo/new');
      assert.equal(await ops.request('demo/new', {}, { target: 'agent-new', timeout: WAIT }), 'new');
      await atCentral.until(() => (atCentral.latest.get(presenceTopic('agent-brief'))?.length === 0 ? true : undefined), 'agent-brief cleared at the central');
      await client(site, 'agent-later');
      await atCentral.until(() => atCentral.payloadOf(presenceTopic('agent-later')), 'agent-later at the central');
    });

    it('reconnection - cut: the status goes down; restored: up, presences republished, the clients that left cleared', async () => {
      await client(site, 'agent-stays');
      // Ephemeral: its presence is cleared when it closes (protocol §7.1), it leaves the site.
      const leaver = await client(site, 'agent-leaves', { ephemeral: true });
      await atCentral.until(() => atCentral.payloadOf(presenceTopic('agent-leaves')), 'agent-leaves at the central');
      await atCentral.until(() => atCentral.payloadOf(presenceTopic('agent-stays')), 'agent-stays at the central');
      // The roster follows the presences (at most 4 a second): the one read after the restore must be a new one.
      await atCentral.until(() => {
        const clients = atCentral.payloadOf<SiteClients>(siteClientsTopic(SITE))?.clients;
        return clients?.includes('agent-stays') && clients.includes('agent-leaves') ? true : undefined;
      }, 'agent-stays and agent-leaves in the roster');
      wan.cut();
      await atCentral.until(() => atCentral.payloadOf<SiteStatus>(siteStatusTopic(SITE))?.status === 'down' || undefined, 'the link down at the central');
      // While the WAN is cut: one client leaves the site, and the central loses what it held of another.
      await leaver.close();
      await atCentral.client.publishAsync(presenceTopic('agent-stays'), '', { qos: 1, retain: true });
      await atCentral.until(() => (atCentral.latest.get(presenceTopic('agent-stays'))?.length === 0 ? true : undefined), 'agent-stays cleared by hand');
      assert.ok(atCentral.payloadOf(presenceTopic('agent-leaves')), 'the central still shows agent-leaves while the link is down');
      wan.restore();
      await atCentral.until(() => atCentral.payloadOf<SiteStatus>(siteStatusTopic(SITE))?.status === 'up' || undefined, 'the link up again at the central', 60_000);
      await atCentral.until(() => atCentral.payloadOf(presenceTopic('agent-stays')), 'agent-stays republished');
      await atCentral.until(() => (atCentral.latest.get(presenceTopic('agent-leaves'))?.length === 0 ? true : undefined), 'agent-leaves cleared at the central');
      const roster = await atCentral.until(() => {
        const clients = atCentral.payloadOf<SiteClients>(siteClientsTopic(SITE));
        return clients && !clients.clients.includes('agent-leaves') ? clients : undefined;
      }, 'a roster without agent-leaves');
      assert.ok(roster.clients.includes('agent-stays'));
      assert.ok(logLines.some((line) => /link down/.test(line)) && logLines.filter((line) => /link up/.test(line)).length >= 2, logLines.join('\n'));
    });

    it('restart - a new link clears at the central the clients the previous one carried that left the site since', async () => {
      const leaver = await client(site, 'agent-gone', { ephemeral: true });
      await atCentral.until(() => atCentral.payloadOf<SiteClients>(siteClientsTopic(SITE))?.clients.includes('agent-gone') || undefined, 'agent-gone in the roster');
      await link.stop();
      await atCentral.until(() => atCentral.payloadOf<SiteStatus>(siteStatusTopic(SITE))?.status === 'down' || undefined, 'the link down at the central');
      await leaver.close();
      assert.ok(atCentral.payloadOf(presenceTopic('agent-gone')), 'a stopped link clears nothing');
      link = openLink(); // a new process: it knows of agent-gone only from its roster on the central
      await atCentral.until(() => atCentral.payloadOf<SiteStatus>(siteStatusTopic(SITE))?.status === 'up' || undefined, 'the new link up at the central');
      await atCentral.until(() => (atCentral.latest.get(presenceTopic('agent-gone'))?.length === 0 ? true : undefined), 'agent-gone cleared at the central');
    });
  });
}

linkTests('pull');
linkTests('push');
