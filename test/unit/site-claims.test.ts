/**
 * The claims of sites (docs/security.md "Sites"): the rule (security/site-claim.ts) and the
 * broker's bounded bookkeeping (broker/site-claims.ts), with a clock the test moves.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SiteClaims } from '../../src/broker/site-claims.js';
import { decideSpeakingFor, type SpokenIdFacts } from '../../src/security/site-claim.js';
import { isSitesWideFilter } from '../../src/security/policy.js';

const HOUR = 60 * 60 * 1000;

function claimsWith(limits: { maxClaims?: number; maxPresences?: number } = {}) {
  let now = 0;
  const connected = new Set<string>();
  const logs: string[] = [];
  const claims = new SiteClaims((id) => connected.has(id), (line) => logs.push(line), { maxClaims: 100_000, idleMs: 24 * HOUR, maxPresences: 200_000, ...limits }, () => now);
  return { claims, connected, logs, advance: (ms: number) => (now += ms) };
}

describe('site claims', () => {
  it('the rule: own ids and site:<own> need no claim; another site\'s address, this process\'s ids, local ids and others\' claims are refused', () => {
    const free: SpokenIdFacts = { connected: false, presenceByLocal: false, claimant: undefined };
    assert.deepEqual(decideSpeakingFor('poller-1', 'poller-1', free), { allow: true, claims: false });
    assert.deepEqual(decideSpeakingFor('poller-1', 'site:poller-1', free), { allow: true, claims: false });
    assert.deepEqual(decideSpeakingFor('poller-1', 'agent-7', free), { allow: true, claims: true });
    assert.deepEqual(decideSpeakingFor('poller-1', 'agent-7', { ...free, claimant: 'poller-1' }), { allow: true, claims: false });
    const refused = (id: string, facts = free) => {
      const verdict = decideSpeakingFor('poller-1', id, facts);
      assert.equal(verdict.allow, false);
      return (verdict as { rule: string }).rule;
    };
    assert.equal(refused('site:poller-2'), 'builtin:site-claim ("site:poller-2" is the router of site poller-2, not of poller-1)');
    assert.match(refused('relais-router'), /this process/);
    assert.match(refused('relais-web'), /this process/);
    assert.equal(refused('alice', { ...free, connected: true }), 'builtin:site-claim ("alice" is a client of this broker)');
    assert.match(refused('bob', { ...free, presenceByLocal: true }), /published its presence here/);
    assert.equal(refused('agent-7', { ...free, claimant: 'poller-2' }), 'builtin:site-claim ("agent-7" is a client of site poller-2)');
  });

  it('a connection with the id or its ~rt makes it local; a claim holds for its site and ends when the site clears the presence', () => {
    const { claims, connected } = claimsWith();
    connected.add('alice~rt');
    assert.equal(claims.check('poller-1', 'alice').allow, false);
    claims.claim('poller-1', ['agent-7']);
    claims.retainedPresence('agent-7', 'poller-1', false);
    assert.equal(claims.check('poller-1', 'agent-7').allow, true);
    assert.equal(claims.check('poller-2', 'agent-7').allow, false);
    // Another site clearing it changes nothing; its own site clearing it ends the claim.
    claims.retainedPresence('agent-7', 'poller-2', true);
    assert.equal(claims.check('poller-2', 'agent-7').allow, false);
    claims.retainedPresence('agent-7', 'poller-1', true);
    assert.deepEqual(claims.check('poller-2', 'agent-7'), { allow: true, claims: true });
    // A presence a client here published keeps the id local until it is cleared.
    claims.retainedPresence('bob', undefined, false);
    assert.equal(claims.check('poller-1', 'bob').allow, false);
    claims.retainedPresence('bob', undefined, true);
    assert.equal(claims.check('poller-1', 'bob').allow, true);
  });

  it('a claim unused for 24 h ends if its id has no retained presence; with one, it holds', () => {
    const { claims, advance } = claimsWith();
    claims.claim('poller-1', ['quiet', 'present']);
    claims.retainedPresence('present', 'poller-1', false);
    advance(24 * HOUR - 1);
    assert.equal(claims.check('poller-2', 'quiet').allow, false);
    advance(1);
    assert.equal(claims.check('poller-2', 'quiet').allow, true);
    assert.equal(claims.check('poller-2', 'present').allow, false);
  });

  it('bounded: past maxClaims a new claim is refused (the expired ones swept first); past maxPresences the oldest publisher is forgotten and logged', () => {
    const { claims, advance, logs } = claimsWith({ maxClaims: 3, maxPresences: 2 });
    claims.claim('poller-1', ['a', 'b', 'c']);
    assert.equal(claims.size, 3);
    const full = claims.check('poller-2', 'd');
    assert.equal(full.allow, false);
    assert.match((full as { rule: string }).rule, /^builtin:site-claim \(this broker holds 3 claims of sites already\)$/);
    // The holder's own ids still pass (no new claim).
    assert.equal(claims.check('poller-1', 'a').allow, true);
    advance(25 * HOUR);
    assert.deepEqual(claims.check('poller-2', 'd'), { allow: true, claims: true });
    assert.equal(claims.size, 0);
    for (const id of ['p', 'q', 'r']) claims.retainedPresence(id, undefined, false);
    assert.equal(logs.length, 1);
    assert.match(logs[0]!, /publisher of the oldest \("p"\) is forgotten/);
    assert.equal(claims.check('poller-1', 'p').allow, true);
    assert.equal(claims.check('poller-1', 'r').allow, false);
  });

  it('the sites-wide filters every identity may read: relais/sites/# and the status and roster shapes, not an action under relais/sites/', () => {
    for (const filter of ['relais/sites/#', 'relais/sites/+', 'relais/sites/+/clients', 'relais/sites/poller-1/#', 'relais/sites/+/+']) assert.ok(isSitesWideFilter(filter.split('/')), filter);
    for (const filter of ['relais/sites/poller-1', 'relais/sites/get/response/+', 'relais/sites/+/response/alice', 'relais/#', 'relais/sites/get/request/#']) assert.ok(!isSitesWideFilter(filter.split('/')), filter);
  });
});
