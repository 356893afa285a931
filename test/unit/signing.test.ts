import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { decode, encode } from '../../src/protocol/envelope.js';
import { commandMessage, notificationMessage } from '../../src/protocol/messages.js';
import { readSignature } from '../../src/protocol/signature.js';
import { keyIdOf, parsePublicKey, rawPublicKey } from '../../src/security/ed25519.js';
import { Signer, Verifier, type Verdict } from '../../src/client/connection/signing.js';
import { ReplayWindows, WINDOW } from '../../src/client/connection/replay-window.js';
import type { VerifyOptions } from '../../src/client/types.js';
import { generateSigningKey, listSigningKeys, loadSigningKeys, readPrivateKey, revokeSigningKey } from '../../src/security/signing-keys.js';

const TOPIC = 'demo/echo/request/h1';

function keyPair(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ed25519');
}

const alice = keyPair();
const bob = keyPair();
const stranger = keyPair();
/** The verifying client's own key: a client that requires signatures signs too. */
const receiver = new Signer({ privateKey: keyPair().privateKey });
const keys = [
  { identity: 'alice', publicKey: alice.publicKey },
  { identity: 'bob', publicKey: bob.publicKey.export({ format: 'pem', type: 'spki' }).toString() },
];

function verifier(options: Partial<VerifyOptions> = {}): Verifier {
  return new Verifier({ keys, ...options }, receiver, 'h1');
}

function command(source = 'alice'): string {
  return encode(commandMessage({ source, destination: 'h1', token: 't1', payload: { n: 1 }, priority: 'normal', deadline: Date.now() + 5000 }));
}

function check(v: Verifier, topic: string, text: string, now?: number): Verdict {
  const payload = Buffer.from(text);
  return v.check(topic, payload, () => decode(payload), true, now);
}

const NO_SIGNER = undefined;
const refusedFor = (verdict: Verdict) => (verdict.ok ? 'admitted' : verdict.reason);

describe('signed envelopes', () => {
  it('signing - a signed command is still a valid envelope and passes the verifier', () => {
    const text = command();
    const signed = new Signer({ privateKey: alice.privateKey }).sign(TOPIC, text);
    assert.equal(readSignature(signed)?.unsigned, text, 'the signed text is the message as it was');
    const decoded = decode(signed);
    assert.ok(decoded.ok);
    assert.equal((decoded.envelope.sig as { kid: string }).kid, keyIdOf(alice.publicKey));
    assert.equal(refusedFor(check(verifier(), TOPIC, signed)), 'admitted');
  });

  it('signing - a changed byte of the payload is a forgery', () => {
    const signed = new Signer({ privateKey: alice.privateKey }).sign(TOPIC, command());
    const tampered = signed.replace('"n":1', '"n":2');
    assert.notEqual(tampered, signed);
    assert.equal(refusedFor(check(verifier(), TOPIC, tampered)), 'forged');
  });

  it("signing - a key is its identity's: each session <identity>~<session> signs with it; another identity's session may not (protocol §2.1, §12)", () => {
    const fromSession = new Signer({ privateKey: alice.privateKey }).sign(TOPIC, command('alice~tab1'));
    assert.equal(refusedFor(check(verifier(), TOPIC, fromSession)), 'admitted');
    const asBobSession = new Signer({ privateKey: alice.privateKey }).sign(TOPIC, command('bob~tab1'));
    assert.equal(refusedFor(check(verifier(), TOPIC, asBobSession)), 'wrong-identity');
    const aliceLookalike = new Signer({ privateKey: alice.privateKey }).sign(TOPIC, command('alicex~tab1'));
    assert.equal(refusedFor(check(verifier(), TOPIC, aliceLookalike)), 'wrong-identity');
  });

  it('signing - a signature by bob on a message claiming source alice is refused, as is a key nobody registered', () => {
    const byBob = new Signer({ privateKey: bob.privateKey }).sign(TOPIC, command('alice'));
    assert.equal(refusedFor(check(verifier(), TOPIC, byBob)), 'wrong-identity');
    const byStranger = new Signer({ privateKey: stranger.privateKey }).sign(TOPIC, command('alice'));
    assert.equal(refusedFor(check(verifier(), TOPIC, byStranger)), 'unknown-key');
  });

  it('signing - a signature made for one topic is refused on another', () => {
    const signed = new Signer({ privateKey: alice.privateKey }).sign(TOPIC, command());
    assert.equal(refusedFor(check(verifier(), 'demo/delete/request/h1', signed)), 'forged');
  });

  it('signing - a replayed signed envelope is refused', () => {
    const v = verifier();
    const signed = new Signer({ privateKey: alice.privateKey }).sign(TOPIC, command());
    assert.equal(refusedFor(check(v, TOPIC, signed)), 'admitted');
    assert.equal(refusedFor(check(v, TOPIC, signed)), 'replayed');
    assert.equal(v.stats.refused.replayed, 1);
    assert.equal(v.stats.verified, 1);
  });

  it('signing - a signature older or newer than the allowed skew is stale', () => {
    const v = verifier({ maxSkewMs: 30_000 });
    const signed = new Signer({ privateKey: alice.privateKey }).sign(TOPIC, command());
    const ts = readSignature(signed)!.ts;
    assert.equal(refusedFor(check(v, TOPIC, signed, ts + 30_001)), 'stale');
    assert.equal(refusedFor(check(v, TOPIC, signed, ts - 30_001)), 'stale');
    assert.equal(refusedFor(check(v, TOPIC, signed, ts + 29_000)), 'admitted', 'within the skew');
  });

  it('signing - messages overtaken by later ones of the same sender (two lanes) are taken, within the window', () => {
    const v = verifier();
    const signer = new Signer({ privateKey: alice.privateKey });
    const sent = Array.from({ length: 10 }, () => signer.sign(TOPIC, command()));
    // The last one took the real-time lane and arrived first; the rest come after, reversed.
    for (const text of [sent[9]!, ...sent.slice(0, 9).reverse()]) assert.equal(refusedFor(check(v, TOPIC, text)), 'admitted');
    for (const text of sent) assert.equal(refusedFor(check(v, TOPIC, text)), 'replayed');
  });

  it('signing - a seq below the window is refused; an unseen one inside it is taken', () => {
    const windows = new ReplayWindows(10, 30_000);
    assert.equal(windows.check('k.b', WINDOW + 100, 0, 0), 'fresh');
    assert.equal(windows.check('k.b', 100, 0, 0), 'replayed', 'below the window');
    assert.equal(windows.check('k.b', 101, 0, 0), 'fresh', 'the lowest seq inside the window');
    assert.equal(windows.check('k.b', 101, 0, 0), 'replayed');
    // A jump past the whole window forgets every slot, and old slots are not mistaken for new seqs.
    assert.equal(windows.check('k.b', 10 * WINDOW + 101, 0, 0), 'fresh');
    assert.equal(windows.check('k.b', 9 * WINDOW + 102, 0, 0), 'fresh');
  });

  it('signing - the replay windows are bounded: the least recently heard sender is forgotten, and counted when it was still fresh', () => {
    const windows = new ReplayWindows(3, 30_000);
    for (let sender = 0; sender < 5; sender++) windows.check(`k.${sender}`, 1, 1000, 1000);
    assert.equal(windows.size, 3);
    assert.equal(windows.unsafeEvictions, 2);
    const later = new ReplayWindows(3, 30_000);
    for (let sender = 0; sender < 5; sender++) later.check(`k.${sender}`, 1, 1000 + sender * 40_000, 1000 + sender * 40_000);
    assert.equal(later.size, 3);
    assert.equal(later.unsafeEvictions, 0, 'forgotten once stale: a replay of theirs is refused as stale');
  });

  it('signing - unsigned messages are refused when required, taken otherwise; a bad signature never is', () => {
    const unsigned = command();
    assert.equal(refusedFor(check(verifier(), TOPIC, unsigned)), 'unsigned');
    assert.equal(refusedFor(check(verifier({ require: false }), TOPIC, unsigned)), 'admitted');
    const forged = new Signer({ privateKey: stranger.privateKey }).sign(TOPIC, command());
    assert.equal(refusedFor(check(verifier({ require: false }), TOPIC, forged)), 'unknown-key');
  });

  it('signing - a client that requires signatures must sign: its own presence comes back through its check', () => {
    assert.throws(() => new Verifier({ keys }, NO_SIGNER, 'h1'), /verify.require needs signing/);
    assert.doesNotThrow(() => new Verifier({ keys, require: false }, NO_SIGNER, 'h1'));
  });

  it('signing - a revoked key and a sig member not written as §12.2 says are refused', () => {
    const signed = new Signer({ privateKey: alice.privateKey }).sign(TOPIC, command());
    const revoked = new Verifier({ keys: [{ identity: 'alice', publicKey: alice.publicKey, revoked: '2026-12-01T00:00:00Z' }] }, receiver, 'h1');
    assert.equal(refusedFor(check(revoked, TOPIC, signed)), 'revoked-key');
    const spaced = signed.replace('"seq":', '"seq": ');
    assert.equal(refusedFor(check(verifier(), TOPIC, spaced)), 'malformed');
  });

  it('signing - a resolver is asked for unknown key ids and cannot substitute another key', () => {
    const signed = new Signer({ privateKey: alice.privateKey }).sign(TOPIC, command());
    const asked: string[] = [];
    const honest = new Verifier({ keys: (kid) => (asked.push(kid), { identity: 'alice', publicKey: alice.publicKey }) }, receiver, 'h1');
    assert.equal(refusedFor(check(honest, TOPIC, signed)), 'admitted');
    assert.deepEqual(asked, [keyIdOf(alice.publicKey)]);
    const lying = new Verifier({ keys: () => ({ identity: 'alice', publicKey: bob.publicKey }) }, receiver, 'h1');
    assert.equal(refusedFor(check(lying, TOPIC, signed)), 'unknown-key');
  });

  it('signing - only JSON object texts are signed; notifications are signed like commands', () => {
    const signer = new Signer({ privateKey: alice.privateKey });
    assert.equal(signer.sign('a/notification', 'plain text'), 'plain text');
    assert.equal(signer.sign('a/notification', '{}'), '{}');
    const note = signer.sign('a/notification', encode(notificationMessage({ source: 'alice', payload: 'hi', priority: 'normal' })));
    assert.equal(refusedFor(check(verifier(), 'a/notification', note)), 'admitted');
  });

  it('signing - a public key reads the same from PEM and from its 32 raw bytes in base64', () => {
    const pem = alice.publicKey.export({ format: 'pem', type: 'spki' }).toString();
    const raw = rawPublicKey(alice.publicKey).toString('base64');
    assert.equal(keyIdOf(parsePublicKey(pem)), keyIdOf(parsePublicKey(raw)));
    assert.match(keyIdOf(alice.publicKey), /^[0-9a-f]{16}$/);
    assert.throws(() => parsePublicKey('AAAA'), /base64 of 32 raw/);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'pem', type: 'spki' }).toString();
    assert.throws(() => parsePublicKey(rsa), /Ed25519/);
  });

  it('signing keys file - keygen writes a 0600 private key and registers its public key; a key id that is not its key\'s is refused naming the field', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-signing-keys-'));
    try {
      const file = path.join(dir, 'signing-keys.json');
      const { kid, privateKeyFile } = generateSigningKey(file, 'alice', path.join(dir, 'keys'));
      assert.equal(fs.statSync(privateKeyFile).mode & 0o777, 0o600);
      assert.equal(keyIdOf(readPrivateKey(privateKeyFile)), kid);
      assert.throws(() => generateSigningKey(file, 'alice', path.join(dir, 'keys')), /exists already/);
      assert.deepEqual(loadSigningKeys(file).map((key) => key.identity), ['alice']);
      assert.ok(revokeSigningKey(file, kid));
      assert.ok(listSigningKeys(file)[0]!.revoked);
      const data = JSON.parse(fs.readFileSync(file, 'utf8')) as { keys: Record<string, unknown> };
      fs.writeFileSync(file, JSON.stringify({ version: 1, keys: { '0123456789abcdef': data.keys[kid] } }));
      assert.throws(() => listSigningKeys(file), /field 'keys\.0123456789abcdef': this key's id is [0-9a-f]{16}/);
      fs.writeFileSync(file, JSON.stringify({ version: 1, keys: { [kid]: { identity: 'alice', publicKey: 'AAAA', createdAt: 'x' } } }));
      assert.throws(() => listSigningKeys(file), new RegExp(`field 'keys\\.${kid}\\.publicKey'`));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
