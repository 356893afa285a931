/**
 * The key-value store (protocol §14) from the Python client, against TypeScript clients on a real
 * `relais start` (its router serves relais/kv/*): what Python writes TypeScript reads, with the
 * Python id as author and bytes as bytes either way; the router's refusals arrive in Python as
 * the typed errors (RevisionConflictError, KeyNotFoundError, ValueTooLargeError); a Python watch
 * sees TypeScript's writes live and goes on across a lost connection and a broker restart, each
 * revision once; a Python plugin's `bus.config()` stores its defaults and its schema, the router
 * refuses a TypeScript write that breaks the schema (ConfigInvalidError) and pushes a valid one to
 * the plugin's `changes()`. Then, with security on, a Python client configures itself but cannot
 * read another client's configuration (§14.8). With paho 1.6 and 2.x.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, type Bus } from '../../src/index.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import { ConfigInvalidError, CONFIG_BUCKET, CONFIG_SCHEMA_BUCKET, KV_ACTIONS } from '../../src/protocol/kv.js';
import { startRouter, type Router } from '../../src/router/index.js';
import { DEFAULT_POLICY_DATA } from '../../src/security/default-policy.js';
import { IdentityStore } from '../../src/security/identities.js';
import { loadPolicy } from '../../src/security/policy-file.js';
import { startRelais, type RelaisStart } from '../testkit/cli.js';
import { testLogger, uniqueId } from '../testkit/index.js';
import { isRelaisError, PAHO_VERSIONS, pythonGate, runPython, startPythonPeer, stopPythonPeers, type PeerError, type PeerLine, type PythonPeer } from '../testkit/python.js';

/** The error a peer's command ended with (it must have failed). */
async function failure(peer: PythonPeer, op: string, args: Record<string, unknown>): Promise<PeerError> {
  const reply = await peer.reply(peer.start(op, args));
  assert.equal(reply.ok, false, `${op} ${JSON.stringify(args)} should have failed, got ${JSON.stringify(reply.result)}`);
  return reply.error!;
}

interface WatchItem {
  key?: string;
  value?: unknown;
  revision: number;
  operation?: string;
  author?: string;
  upToDate?: true;
}

/** The items a peer's watch `sub` reported so far. */
const watchItems = (peer: PythonPeer, sub: number) => peer.seen((line) => line.event === 'kv-watch' && line.sub === sub).map((line) => line.item as WatchItem);

/** Waits for the watch `sub` to report a change of `key` at `revision`. */
const watchSees = (peer: PythonPeer, sub: number, key: string, revision: number, what: string) =>
  peer.next((line: PeerLine) => line.event === 'kv-watch' && line.sub === sub && (line.item as WatchItem).key === key && (line.item as WatchItem).revision === revision, what, 60_000);

const SCHEMA = {
  type: 'object',
  properties: { level: { type: 'number' }, name: { type: 'string' } },
  required: ['level'],
  additionalProperties: false,
};

/** A blocking script (relais.sync) using the store: argv = broker, id, bucket; prints what it saw as one JSON line. */
const SYNC_SCRIPT = `
import json, sys, relais, relais.sync
broker, client_id, bucket = sys.argv[1:4]
with relais.sync.connect(id=client_id, broker=broker) as bus:
    bus.wait_for_handler("relais/kv/get", timeout=20)
    rooms = bus.kv(bucket)
    out = {"put": rooms.put("kitchen", {"temp": 21}), "watch": []}
    try:
        rooms.create("kitchen", 1)
    except relais.RevisionConflictError as error:
        out["conflict"] = error.details["currentRevision"]
    for item in rooms.watch():
        out["watch"].append(item)
        if relais.is_up_to_date(item):
            break
    schema = {"type": "object", "properties": {"level": {"type": "number"}}}

    def at_most_ten(value):
        if value.get("level", 0) > 10:
            raise ValueError("level: at most 10")
    try:
        bus.config(schema, defaults={"level": 11}, validate=at_most_ten)
    except relais.ConfigInvalidError as error:
        out["bad_defaults"] = str(error)
    config = bus.config(schema, defaults={"level": 1}, validate=at_most_ten)
    out["config"] = config.value
    changes = config.changes()
    bus.kv("config").put(client_id, {"level": 50})   # the router takes it (no maximum in the schema); validate refuses it here
    bus.kv("config").put(client_id, {"level": 2})
    out["change"] = next(changes)
    try:
        config.set({"level": 20})
    except relais.ConfigInvalidError as error:
        out["bad_set"] = str(error)
    out["set"] = config.set({"level": 3})
    out["after_set"] = next(changes)
    config.close()
    print(json.dumps(out))
`;

describe('Python client and the key-value store, with relais start', { skip: pythonGate('the cross-language key-value tests').skip, timeout: 600_000 }, () => {
  let relais: RelaisStart;
  let ts: Bus;
  let dir: string;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-pykv-'));
    const kvConfig = path.join(dir, 'kv.json');
    fs.writeFileSync(kvConfig, JSON.stringify({ buckets: { small: { maxValueBytes: 100 } } }));
    relais = await startRelais(['--no-web', '--kv-config', kvConfig]);
    ts = await connect({ id: uniqueId('ts'), broker: relais.url, logger: testLogger });
    await ts.waitForHandler(KV_ACTIONS.get, { timeout: 30_000 });
  });
  after(async () => {
    await stopPythonPeers();
    await ts?.close();
    await relais?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const version of PAHO_VERSIONS) {
    describe(`paho ${version}.x`, { skip: pythonGate(`the cross-language key-value tests with paho ${version}.x`, version).skip }, () => {
      it(`kv (paho ${version}) - a Python put is read by TypeScript, the Python id its author; bytes stay bytes either way; keys and history from Python`, async () => {
        const py = await startPythonPeer({ id: uniqueId(`py${version}-kv`), broker: relais.url }, version);
        const bucket = `rooms${version}`;
        const revision = await py.send<number>('kv', { bucket, method: 'put', args: ['kitchen', { temp: 21 }] });
        const entry = await ts.kv(bucket).get('kitchen');
        assert.deepEqual([entry.value, entry.author, entry.revision, entry.operation], [{ temp: 21 }, py.id, revision, 'put']);

        await py.send('kv', { bucket, method: 'put', args: ['blob', { $bytes: Buffer.from([0, 1, 255]).toString('base64') }] });
        const blob = await ts.kv(bucket).get('blob');
        assert.ok(blob.value instanceof Uint8Array, 'a Python bytes value is bytes to TypeScript');
        assert.deepEqual([...(blob.value as Uint8Array)], [0, 1, 255]);
        await ts.kv(bucket).put('from-ts', new Uint8Array([7, 8]));
        const back = await py.send<{ value: unknown; bytes?: boolean; author: string }>('kv', { bucket, method: 'get', args: ['from-ts'] });
        assert.deepEqual([back.value, back.bytes, back.author], [{ $bytes: Buffer.from([7, 8]).toString('base64') }, true, ts.id]);

        await ts.kv(bucket).put('kitchen', { temp: 22 });
        assert.deepEqual(await py.send('kv', { bucket, method: 'keys', options: { limit: 2 } }), { keys: ['blob', 'from-ts'], more: true });
        assert.deepEqual(await py.send('kv', { bucket, method: 'keys', options: { after: 'from-ts' } }), { keys: ['kitchen'], more: false });
        const history = await py.send<WatchItem[]>('kv', { bucket, method: 'history', args: ['kitchen'] });
        assert.deepEqual(history.map((item) => [item.value, item.author]), [[{ temp: 21 }, py.id], [{ temp: 22 }, ts.id]]);
        const old = await py.send<WatchItem>('kv', { bucket, method: 'get', args: ['kitchen'], options: { revision } });
        assert.deepEqual(old.value, { temp: 21 }, 'a kept revision is read by number');
      });

      it(`kv (paho ${version}) - the router's refusals are typed in Python: a stale compare-and-set RevisionConflictError with the current revision, a missing key KeyNotFoundError, a value over the bucket's limit ValueTooLargeError`, async () => {
        const py = await startPythonPeer({ id: uniqueId(`py${version}-cas`), broker: relais.url }, version);
        const bucket = `counters${version}`;
        const created = await py.send<number>('kv', { bucket, method: 'create', args: ['visits', 1] });
        const updated = await ts.kv<number>(bucket).put('visits', 2, { expectRevision: created });

        const conflict = await failure(py, 'kv', { bucket, method: 'put', args: ['visits', 3], options: { expect_revision: created } });
        assert.ok(isRelaisError(conflict, 'RevisionConflictError'), JSON.stringify(conflict));
        assert.deepEqual(conflict.details, { bucket, key: 'visits', expectedRevision: created, currentRevision: updated });
        assert.equal(conflict.response_code, 1);
        const again = await failure(py, 'kv', { bucket, method: 'create', args: ['visits', 100] });
        assert.ok(isRelaisError(again, 'RevisionConflictError'), 'create over a value conflicts');
        assert.equal((await ts.kv(bucket).get('visits')).value, 2, 'nothing was written by the refused puts');
        assert.equal(await py.send('kv', { bucket, method: 'put', args: ['visits', 3], options: { expect_revision: updated } }), updated + 1);

        const missing = await failure(py, 'kv', { bucket, method: 'get', args: ['nobody'] });
        assert.ok(isRelaisError(missing, 'KeyNotFoundError'), JSON.stringify(missing));
        assert.deepEqual(missing.details, { bucket, key: 'nobody' });
        await py.send('kv', { bucket, method: 'delete', args: ['visits'] });
        assert.ok(isRelaisError(await failure(py, 'kv', { bucket, method: 'delete', args: ['visits'] }), 'KeyNotFoundError'), 'deleting again');

        const large = await failure(py, 'kv', { bucket: 'small', method: 'put', args: [`big${version}`, 'x'.repeat(200)] });
        assert.ok(isRelaisError(large, 'ValueTooLargeError') && isRelaisError(large, 'PayloadTooLargeError'), JSON.stringify(large));
        assert.deepEqual([large.response_code, (large.details as { max: number }).max], [7, 100]);
      });

      it(`kv watch (paho ${version}) - a Python watch gets the current value, up to date, then TypeScript writes live; it goes on across a lost connection and a broker restart, each revision once and in order`, async () => {
        const py = await startPythonPeer({ id: uniqueId(`py${version}-watch`), broker: relais.url }, version);
        const bucket = `lights${version}`;
        const lights = ts.kv(bucket);
        const first = await lights.put('floor1/hall', 'on');
        await lights.put('floor2/attic', 'off');
        const sub = py.start('kv_watch', { bucket, options: { prefix: 'floor1/' } });
        await py.next((line) => line.event === 'kv-watch' && line.sub === sub && (line.item as WatchItem).upToDate === true, 'the watch up to date');
        assert.deepEqual(watchItems(py, sub).map((item) => [item.key, item.value, item.revision]), [['floor1/hall', 'on', first], [undefined, undefined, 2]]);

        const live = await lights.put('floor1/kitchen', 'on');
        await lights.put('floor2/attic', 'on');
        const seen = await watchSees(py, sub, 'floor1/kitchen', live, 'the live TypeScript write');
        assert.equal((seen.item as WatchItem).author, ts.id);

        await py.send('drop_connection');
        const whileDropped = await lights.put('floor1/hall', 'off');
        await watchSees(py, sub, 'floor1/hall', whileDropped, 'the write made while its connection was lost');

        await relais.restart();
        await ts.waitForHandler(KV_ACTIONS.get, { timeout: 60_000 });
        const afterRestart = await lights.delete('floor1/kitchen');
        await watchSees(py, sub, 'floor1/kitchen', afterRestart, 'the delete made after the broker restarted');

        const changes = watchItems(py, sub).filter((item) => item.upToDate !== true);
        assert.deepEqual(changes.map((item) => [item.key, item.revision, item.operation]), [
          ['floor1/hall', first, 'put'],
          ['floor1/kitchen', live, 'put'],
          ['floor1/hall', whileDropped, 'put'],
          ['floor1/kitchen', afterRestart, 'delete'],
        ], 'each change of its prefix once, in revision order');
        assert.ok(watchItems(py, sub).filter((item) => item.upToDate === true).length >= 2, 'up to date again after catching up');
        assert.ok(py.start('cancel', { target: sub }));
      });

      it(`config (paho ${version}) - a Python plugin's defaults and schema are stored; the router refuses a TypeScript write that breaks the schema (ConfigInvalidError) and pushes a valid one, then a delete (the defaults), to the plugin's changes()`, async () => {
        const py = await startPythonPeer({ id: uniqueId(`py${version}-plugin`), broker: relais.url }, version);
        const defaults = { level: 1, name: 'lamp' };
        const opened = await py.send<{ value: unknown; revision: number }>('config', { schema: SCHEMA, defaults });
        assert.deepEqual(opened.value, defaults);

        const stored = await ts.kv(CONFIG_BUCKET).get(py.id);
        assert.deepEqual([stored.value, stored.author, stored.revision], [defaults, py.id, opened.revision], 'the defaults were written by the plugin');
        const announced = (await ts.kv(CONFIG_SCHEMA_BUCKET).get(py.id)).value as { schema: unknown; hash: string };
        assert.deepEqual(announced.schema, SCHEMA);
        assert.match(announced.hash, /^[0-9a-f]{16}$/);

        await assert.rejects(ts.kv(CONFIG_BUCKET).put(py.id, { level: 'high' }), (error: unknown) => {
          assert.ok(error instanceof ConfigInvalidError, String(error));
          assert.deepEqual((error.details as { issues: Array<{ path: unknown[] }> }).issues.map((issue) => issue.path), [['level']]);
          return true;
        });
        const revision = await ts.kv(CONFIG_BUCKET).put(py.id, { level: 5, name: 'lamp' });
        const change = await py.next((line) => line.event === 'config-change' && (line.value as { level: number }).level === 5, 'the valid value pushed to changes()');
        assert.equal(change.revision, revision);
        await ts.kv(CONFIG_BUCKET).delete(py.id);
        const reset = await py.next((line) => line.event === 'config-change' && line.revision === revision + 1, 'the defaults pushed after a delete');
        assert.deepEqual(reset.value, defaults);
        const pushed = py.seen((line) => line.event === 'config-change').map((line) => line.value);
        assert.deepEqual(pushed, [{ level: 5, name: 'lamp' }, defaults], 'the refused value was never pushed');

        // Started again, the plugin reads what is stored instead of writing its defaults.
        await ts.kv(CONFIG_BUCKET).put(py.id, { level: 7 });
        await py.stop();
        const restarted = await startPythonPeer({ id: py.id, broker: relais.url }, version);
        assert.deepEqual((await restarted.send<{ value: unknown }>('config', { schema: SCHEMA, defaults })).value, { level: 7 });
      });

      it(`relais.sync (paho ${version}) - a blocking script puts, meets a conflict, watches until up to date, gets its configuration and its changes, a value its validate refuses left out`, async () => {
        const id = uniqueId(`py${version}-script`);
        const bucket = `script${version}`;
        const result = await runPython(['-c', SYNC_SCRIPT, relais.url, id, bucket], version, 60_000);
        assert.equal(result.code, 0, result.stderr);
        const out = JSON.parse(result.stdout) as { put: number; conflict: number; watch: WatchItem[]; config: unknown; change: unknown; bad_defaults: string; bad_set: string; set: number; after_set: unknown };
        assert.equal(out.conflict, out.put, 'create over a value: RevisionConflictError with the current revision');
        assert.deepEqual(out.watch.map((item) => [item.key, item.value, item.upToDate]), [['kitchen', { temp: 21 }, undefined], [undefined, undefined, true]]);
        assert.match(out.bad_defaults, /the defaults of .*'s configuration: level: at most 10/);
        assert.deepEqual([out.config, out.change], [{ level: 1 }, { level: 2 }], 'the value validate refuses is not pushed');
        assert.match(out.bad_set, /the configuration of .*: level: at most 10/);
        assert.deepEqual(out.after_set, { level: 3 });
        assert.equal((await ts.kv(bucket).get('kitchen')).author, id);
        const stored = await ts.kv(CONFIG_BUCKET).get(id);
        assert.deepEqual([stored.value, stored.revision], [{ level: 3 }, out.set]);
      });
    });
  }
});

describe('Python client and the key-value store, without a router and with security on', { skip: pythonGate('the cross-language key-value security tests').skip, timeout: 300_000 }, () => {
  let dir: string;
  let bare: EmbeddedBroker;
  let secure: EmbeddedBroker;
  let router: Router;
  let root: Bus;
  const tokens = new Map<string, string>();
  const names = { alice: uniqueId('alice'), bob: uniqueId('bob'), root: uniqueId('root') };
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-pykv-secure-'));
    bare = await startEmbeddedBroker({ port: 0, log: () => {} });
    const store = new IdentityStore(path.join(dir, 'identities.json'));
    for (const [name, role] of [[names.alice, 'client'], [names.bob, 'client'], [names.root, 'admin']] as const) tokens.set(name, (await store.add(name, [role])).token);
    const policyFile = path.join(dir, 'policy.json');
    fs.writeFileSync(policyFile, JSON.stringify(DEFAULT_POLICY_DATA));
    secure = await startEmbeddedBroker({ port: 0, security: { identities: store, policy: loadPolicy(policyFile) }, log: () => {} });
    router = await startRouter({ stream: () => secure.connectInProcess(), database: path.join(dir, 'history.db'), logger: testLogger, access: { identities: store.file, policy: policyFile } });
    root = await connect({ id: names.root, broker: secure.url!, username: names.root, password: tokens.get(names.root)!, realtimeLane: false, logger: testLogger });
    await root.waitForHandler(KV_ACTIONS.get, { timeout: 30_000 });
    await root.kv(CONFIG_BUCKET).put(names.bob, { level: 3 });
  });
  after(async () => {
    await stopPythonPeers();
    await root?.close();
    await router?.close();
    await secure?.close();
    await bare?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const version of PAHO_VERSIONS) {
    describe(`paho ${version}.x`, { skip: pythonGate(`the cross-language key-value security tests with paho ${version}.x`, version).skip }, () => {
      it(`config (paho ${version}) - with no router on the bus, bus.config() fails with NoHandlerError saying the configuration needs one`, async () => {
        const py = await startPythonPeer({ id: uniqueId(`py${version}-lonely`), broker: bare.url! }, version);
        const error = await failure(py, 'config', { schema: SCHEMA, defaults: { level: 1 }, options: { router_wait: 0.5 } });
        assert.ok(isRelaisError(error, 'NoHandlerError'), JSON.stringify(error));
        assert.match(error.message, /no router serves the key-value store \(relais\/kv\/get\) after 0\.5 s: .*configuration is kept there \(start one: relais start\)/);
      });

      it(`security (paho ${version}) - a Python client configures itself, but may not read or write another client's configuration (NotAuthorizedError, code 4)`, async () => {
        const py = await startPythonPeer({ id: names.alice, broker: secure.url!, username: names.alice, password: tokens.get(names.alice)!, realtime_lane: false }, version);
        const opened = await py.send<{ value: unknown }>('config', { schema: SCHEMA, defaults: { level: version } });
        assert.ok([1, 2].includes((opened.value as { level: number }).level), JSON.stringify(opened));
        assert.deepEqual((await root.kv(CONFIG_BUCKET).get(names.alice)).value, opened.value, 'its own configuration is stored');
        const read = await failure(py, 'kv', { bucket: CONFIG_BUCKET, method: 'get', args: [names.bob] });
        assert.ok(isRelaisError(read, 'NotAuthorizedError'), JSON.stringify(read));
        assert.equal(read.response_code, 4);
        const write = await failure(py, 'kv', { bucket: CONFIG_BUCKET, method: 'put', args: [names.bob, { level: 9 }] });
        assert.ok(isRelaisError(write, 'NotAuthorizedError'), JSON.stringify(write));
        assert.deepEqual(await py.send('kv', { bucket: CONFIG_BUCKET, method: 'keys' }), { keys: [names.alice], more: false }, 'listing shows its own key only');
        assert.deepEqual((await root.kv(CONFIG_BUCKET).get(names.bob)).value, { level: 3 }, "bob's configuration is untouched");
        await py.stop();
      });
    });
  }
});
