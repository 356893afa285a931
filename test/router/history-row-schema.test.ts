/**
 * A row another router sends (a site's, protocol §13.5) is checked before it is stored: a sealed
 * row's seal member must be one written as protocol §3.6 says, or the row is refused.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { historyRowSchema } from '../../src/protocol/history.js';
import { SEAL_ALGORITHM } from '../../src/protocol/sealing.js';

const seal = {
  alg: SEAL_ALGORITHM,
  form: 'json',
  epk: Buffer.alloc(32, 1).toString('base64'),
  nonce: Buffer.alloc(12, 2).toString('base64'),
  to: [{ kid: '0123456789abcdef', key: Buffer.alloc(48, 3).toString('base64') }],
};
const row = { id: 1, token: 't', kind: 'command', action: 'demo/echo', source: 'ui', etime: 1, ctime: 2, data: 'AAAA', size: 3, truncated: false, sha256: 'a'.repeat(64) };

it('history row - a sealed row from a site keeps its seal member', () => {
  assert.deepEqual(historyRowSchema.parse({ ...row, seal }).seal, seal);
  assert.equal('seal' in historyRowSchema.parse(row), false);
});

it('history row - a row whose seal member is not one of protocol §3.6 is refused, naming the field', () => {
  for (const bad of [{ ...seal, to: [] }, { ...seal, epk: 'short' }, { ...seal, alg: 'none' }, 'sealed', { to: seal.to, alg: seal.alg, form: 'json', epk: seal.epk, nonce: seal.nonce }]) {
    const parsed = historyRowSchema.safeParse({ ...row, seal: bad });
    assert.equal(parsed.success, false, JSON.stringify(bad));
    assert.match(parsed.error!.issues[0]!.message, /seal/);
  }
});
