/**
 * The registry's pages (protocol §11.3), pure: the table keeps its ids in code-unit order as
 * clients come and are forgotten, a page stops where its measured JSON would outgrow its
 * bytes, and readAllPages follows `next` keeping the first page's revision.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { readAllPages, takePage, type ClientListPayload } from '../../src/protocol/registry.js';
import { ClientTable } from '../../src/router/registry-table.js';

const presence = (status: string, instance: string, ephemeral = false) => ({ kind: 'presence' as const, payload: { status, since: 100, seq: status === 'alive' ? 1 : 2, instance, actions: [], realtimeActions: [], ...(ephemeral && { ephemeral: true }) } });

it('registry pages - ids in code-unit order across comings and forgettings; after need not be a known id', () => {
  const table = new ClientTable();
  for (const id of ['m', 'B', 'a', 'z', 'Z', '0', 'm~tab', 'gone']) table.apply(id, presence('alive', 'i', id === 'gone'), 1000);
  assert.equal(table.listPage({}, 1_000_000).total, 8);
  assert.equal(table.apply('gone', presence('dead', 'i', true), 1001), true, 'an ephemeral client gone is forgotten');
  const ids = (request: { after?: string; limit?: number }) => Object.keys(table.listPage(request, 1_000_000).clients);
  assert.deepEqual(ids({}).sort(), ['0', 'B', 'Z', 'a', 'm', 'm~tab', 'z'].sort(), 'the forgotten client is in no page');
  const pages: string[] = [];
  let after: string | undefined;
  do {
    const page = table.listPage({ ...(after !== undefined && { after }), limit: 2 }, 1_000_000);
    assert.equal(page.total, 7);
    pages.push(...Object.keys(page.clients));
    after = page.next;
  } while (after !== undefined);
  assert.deepEqual(pages, ['0', 'B', 'Z', 'a', 'm', 'm~tab', 'z'], 'code-unit order, each once');
  assert.deepEqual(ids({ after: 'b' }), ['m', 'm~tab', 'z'], 'after an id the registry does not know');
  assert.deepEqual(ids({ after: 'z' }), [], 'after the last id: an empty last page');
  assert.equal(table.listPage({ after: 'z' }, 1_000_000).next, undefined);
});

it('registry pages - a page stops before its measured JSON outgrows its bytes, and says next; at least one client', () => {
  const ids = Array.from({ length: 50 }, (_, n) => `client-${String(n).padStart(2, '0')}`);
  const entryOf = (id: string) => ({ host: `host of ${id} é` });
  const page = takePage(ids, {}, 500, entryOf);
  const taken = Object.keys(page.clients);
  assert.ok(Buffer.byteLength(JSON.stringify(page.clients)) <= 500, 'within its bytes, measured in UTF-8');
  const withOneMore = { ...page.clients, [ids[taken.length]!]: entryOf(ids[taken.length]!) };
  assert.ok(Buffer.byteLength(JSON.stringify(withOneMore)) > 500, 'full: one more would not fit');
  assert.equal(page.next, taken.at(-1));
  assert.deepEqual(Object.keys(takePage(ids, { after: 'client-10' }, 1, entryOf).clients), ['client-11'], 'one client even when it alone is too large');
});

it('registry pages - readAllPages follows next, keeps the first revision, refuses a next that does not move on', async () => {
  const answers: Record<string, ClientListPayload> = {
    '': { revision: 5, total: 3, clients: { a: { identity: 'a', status: 'alive', lastSeen: 1 } }, next: 'a' },
    a: { revision: 7, total: 3, clients: { b: { identity: 'b', status: 'alive', lastSeen: 1 }, c: { identity: 'c', status: 'dead', lastSeen: 1 } } },
  };
  const asked: unknown[] = [];
  const all = await readAllPages(async (request) => {
    asked.push(request);
    return answers[request.after ?? '']!;
  });
  assert.deepEqual(asked, [{}, { after: 'a' }]);
  assert.deepEqual([all.revision, all.total, Object.keys(all.clients)], [5, 3, ['a', 'b', 'c']]);
  await assert.rejects(
    readAllPages(async () => ({ revision: 1, clients: {}, next: 'a' })),
    /not after it/,
  );
});
