/**
 * `relais clients` with sessions (protocol §2.1, §11.3): the sessions of one identity are indented
 * under it, the identity heading them (its own row, or a line naming it when it is not connected
 * itself); an older router's rows without `identity` are read from their ids.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatTable } from '../../src/cli/clients.js';

describe('relais clients - sessions', () => {
  it("clients - an identity's sessions are indented under it, whether the identity is connected itself or not", () => {
    const table = formatTable(
      new Map([
        ['alice~web-2', { identity: 'alice', session: 'web-2', status: 'alive' as const, lastSeen: 0, info: { program: 'web page' } }],
        ['bob~cli-7-x', { identity: 'bob', session: 'cli-7-x', status: 'alive' as const, lastSeen: 0, info: { program: 'sub #' } }],
        ['alice', { identity: 'alice', status: 'alive' as const, lastSeen: 0, info: { program: 'serve demo/install' } }],
        ['alice~cli-42-a', { status: 'alive' as const, lastSeen: 0, info: { program: 'call demo/install' } }],
        ['alicex', { identity: 'alicex', status: 'alive' as const, lastSeen: 0 }],
      ]),
      1000,
    );
    const lines = table.split('\n');
    assert.match(lines[1]!, /^alice\s+serve demo\/install\s+alive/);
    assert.match(lines[2]!, /^ {2}alice~cli-42-a\s+call demo\/install\s+alive/, 'read from its id (a router without identity fields)');
    assert.match(lines[3]!, /^ {2}alice~web-2\s+web page\s+alive/);
    assert.match(lines[4]!, /^alicex\s+-\s+alive/);
    assert.match(lines[5]!, /^bob\s+\(1 session\)$/, 'a line naming the identity when it is not connected itself');
    assert.match(lines[6]!, /^ {2}bob~cli-7-x\s+sub #\s+alive/);
    assert.equal(lines[7], '5 clients');
  });
});
