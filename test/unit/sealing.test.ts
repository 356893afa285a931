import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, createHash, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { decode, encodeMessage } from '../../src/protocol/envelope.js';
import { splitFrame } from '../../src/protocol/framing.js';
import { commandMessage } from '../../src/protocol/messages.js';
import { MAX_SEAL_RECIPIENTS, readSealMember, sealedEnvelope, type SealMember } from '../../src/protocol/sealing.js';
import { openPayload, sealingIdentityKey, sealingKeyIdOf, sealingRecipient, sealPayload } from '../../src/security/sealing.js';
import { generateSealingKey, listSealingKeys, loadSealingKeys, readSealingPrivateKey, revokeSealingKey } from '../../src/security/sealing-keys.js';
import { generateSigningKey } from '../../src/security/signing-keys.js';
import { Sealing } from '../../src/client/sealing.js';
import { SealingError } from '../../src/protocol/errors.js';
import { notificationMessage } from '../../src/protocol/messages.js';

const handler = generateKeyPairSync('x25519');
const other = generateKeyPairSync('x25519');
const binding = { type: 'command', source: 'alice~s1', token: 't1' };

/** The raw 32 bytes of an X25519 public key (the last 32 bytes of its SPKI DER). */
function raw(key: KeyObject): Buffer {
  return (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'der', type: 'spki' }).subarray(-32);
}

const kidOf = (key: KeyObject) => createHash('sha256').update(raw(key)).digest('hex').slice(0, 16);

/** protocol §3.6, written again here from the document's text: what a foreign peer does to open. */
function foreignOpen(seal: SealMember, body: Uint8Array, privateKey: KeyObject, fields: { type: string; source: string; token?: string }): Buffer {
  const kid = kidOf(privateKey);
  const entry = seal.to.find((recipient) => recipient.kid === kid)!;
  const epk = Buffer.from(seal.epk, 'base64');
  const epkKey = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b656e032100', 'hex'), epk]), format: 'der', type: 'spki' });
  const z = diffieHellman({ privateKey, publicKey: epkKey });
  const kek = Buffer.from(hkdfSync('sha256', z, Buffer.concat([epk, raw(privateKey)]), 'relais-seal/1 key', 32));
  const wrapped = Buffer.from(entry.key, 'base64');
  const unwrap = createDecipheriv('aes-256-gcm', kek, Buffer.alloc(12));
  unwrap.setAAD(Buffer.from(kid, 'utf8'));
  unwrap.setAuthTag(wrapped.subarray(32));
  const cek = Buffer.concat([unwrap.update(wrapped.subarray(0, 32)), unwrap.final()]);
  const aad = Buffer.from(`relais-seal/1\0${fields.type}\0${fields.source}\0${fields.token ?? ''}\0${seal.form}\0${seal.epk}`, 'utf8');
  const decipher = createDecipheriv('aes-256-gcm', cek, Buffer.from(seal.nonce, 'base64'));
  decipher.setAAD(aad);
  decipher.setAuthTag(Buffer.from(body.subarray(body.length - 16)));
  return Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]);
}

/** The same, the other way: a foreign peer seals for our key. */
function foreignSeal(plaintext: Buffer, recipient: KeyObject, fields: { type: string; source: string; token?: string }): { seal: SealMember; body: Buffer } {
  const e = generateKeyPairSync('x25519');
  const epk = raw(e.publicKey);
  const cek = randomBytes(32);
  const nonce = randomBytes(12);
  const kid = kidOf(recipient);
  const kek = Buffer.from(hkdfSync('sha256', diffieHellman({ privateKey: e.privateKey, publicKey: recipient }), Buffer.concat([epk, raw(recipient)]), 'relais-seal/1 key', 32));
  const wrap = createCipheriv('aes-256-gcm', kek, Buffer.alloc(12));
  wrap.setAAD(Buffer.from(kid, 'utf8'));
  const key = Buffer.concat([wrap.update(cek), wrap.final(), wrap.getAuthTag()]).toString('base64');
  const aad = Buffer.from(`relais-seal/1\0${fields.type}\0${fields.source}\0${fields.token ?? ''}\0json\0${epk.toString('base64')}`, 'utf8');
  const cipher = createCipheriv('aes-256-gcm', cek, nonce);
  cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return { seal: { alg: 'X25519-HKDF-SHA256-A256GCM', form: 'json', epk: epk.toString('base64'), nonce: nonce.toString('base64'), to: [{ kid, key }] }, body };
}

describe('sealed payloads (protocol §3.6)', () => {
  it('a foreign peer following the document opens what the library seals', () => {
    const { seal, body } = sealPayload({ secret: 'attack at dawn', n: 3 }, binding, [sealingRecipient(handler.publicKey)]);
    assert.equal(readSealMember(seal), seal);
    assert.deepEqual(Object.keys(seal), ['alg', 'form', 'epk', 'nonce', 'to']);
    assert.equal(seal.form, 'json');
    assert.equal(body.length, JSON.stringify({ secret: 'attack at dawn', n: 3 }).length + 16);
    assert.equal(foreignOpen(seal, body, handler.privateKey, binding).toString('utf8'), '{"secret":"attack at dawn","n":3}');
  });

  it('the library opens what a foreign peer seals following the document', () => {
    const { seal, body } = foreignSeal(Buffer.from('{"hello":"world"}'), handler.publicKey, binding);
    const opened = openPayload(binding, seal, body, [sealingIdentityKey(handler.privateKey)]);
    assert.deepEqual(opened, { ok: true, payload: { hello: 'world' }, seal });
  });

  it('the key id is the first 16 hex digits of the SHA-256 of the raw public key (protocol §12.5)', () => {
    assert.equal(sealingKeyIdOf(handler.publicKey), kidOf(handler.publicKey));
    assert.equal(sealingKeyIdOf(handler.privateKey), kidOf(handler.publicKey));
  });

  it('a bytes payload is sealed as its bytes and opened as bytes', () => {
    const bytes = randomBytes(1000);
    const { seal, body } = sealPayload(bytes, binding, [sealingRecipient(handler.publicKey)]);
    assert.equal(seal.form, 'bytes');
    assert.ok(!Buffer.from(body).includes(bytes.subarray(0, 16)));
    const opened = openPayload(binding, seal, body, [sealingIdentityKey(handler.privateKey)]);
    assert.ok(opened.ok);
    assert.ok(Buffer.from(opened.payload as Uint8Array).equals(bytes));
  });

  it('each recipient opens with its own key; a key not listed is not-for-me', () => {
    const third = generateKeyPairSync('x25519');
    const { seal, body } = sealPayload('for two', binding, [sealingRecipient(handler.publicKey), sealingRecipient(other.publicKey)]);
    assert.equal(seal.to.length, 2);
    for (const key of [handler, other]) assert.deepEqual(openPayload(binding, seal, body, [sealingIdentityKey(key.privateKey)]), { ok: true, payload: 'for two', seal });
    const refused = openPayload(binding, seal, body, [sealingIdentityKey(third.privateKey)]);
    assert.equal(refused.ok, false);
    assert.equal(!refused.ok && refused.reason, 'not-for-me');
    assert.match(!refused.ok ? refused.why : '', new RegExp(`sealed for ${kidOf(handler.publicKey)}, ${kidOf(other.publicKey)}, this client holds ${kidOf(third.publicKey)}`));
  });

  it('any byte of the body changed makes it undecryptable', () => {
    const { seal, body } = sealPayload({ amount: 100 }, binding, [sealingRecipient(handler.publicKey)]);
    const keys = [sealingIdentityKey(handler.privateKey)];
    for (let at = 0; at < body.length; at += 1) {
      const tampered = Buffer.from(body);
      tampered[at]! ^= 0x01;
      const opened = openPayload(binding, seal, tampered, keys);
      assert.equal(!opened.ok && opened.reason, 'undecryptable', `byte ${at}`);
    }
    assert.equal(((r) => !r.ok && r.reason)(openPayload(binding, seal, body.subarray(0, body.length - 1), keys)), 'undecryptable');
  });

  it('a changed wrapped key, ephemeral key or nonce makes it undecryptable', () => {
    const { seal, body } = sealPayload({ amount: 100 }, binding, [sealingRecipient(handler.publicKey)]);
    const keys = [sealingIdentityKey(handler.privateKey)];
    const flip = (text: string) => {
      const bytes = Buffer.from(text, 'base64');
      bytes[3]! ^= 0x40;
      return bytes.toString('base64');
    };
    for (const changed of [{ ...seal, to: [{ ...seal.to[0]!, key: flip(seal.to[0]!.key) }] }, { ...seal, epk: flip(seal.epk) }, { ...seal, nonce: flip(seal.nonce) }]) {
      const opened = openPayload(binding, changed, body, keys);
      assert.equal(!opened.ok && opened.reason, 'undecryptable');
    }
  });

  it('a body moved into another envelope (token, source, type) does not open: the AAD binds it', () => {
    const { seal, body } = sealPayload({ amount: 100 }, binding, [sealingRecipient(handler.publicKey)]);
    const keys = [sealingIdentityKey(handler.privateKey)];
    for (const moved of [{ ...binding, token: 't2' }, { ...binding, source: 'mallory~s1' }, { ...binding, type: 'response' }, { type: 'command', source: 'alice~s1' }]) {
      const opened = openPayload(moved, seal, body, keys);
      assert.equal(!opened.ok && opened.reason, 'undecryptable', JSON.stringify(moved));
    }
    // The form is bound too: a json seal relabelled bytes would hand out the JSON text as bytes.
    assert.equal(((r) => !r.ok && r.reason)(openPayload(binding, { ...seal, form: 'bytes' }, body, keys)), 'undecryptable');
  });

  it('seals for at most 64 keys; a seal member listing more is malformed', () => {
    const many = Array.from({ length: MAX_SEAL_RECIPIENTS + 1 }, () => sealingRecipient(generateKeyPairSync('x25519').publicKey));
    const { seal } = sealPayload(1, binding, many.slice(0, MAX_SEAL_RECIPIENTS));
    assert.equal(seal.to.length, 64);
    assert.throws(() => sealPayload(1, binding, many), /at most 64 keys, got 65/);
    assert.throws(() => sealPayload(1, binding, []), /at least one recipient/);
    const oversized = { ...seal, to: [...seal.to, { kid: '0123456789abcdef', key: seal.to[0]!.key }] };
    assert.match(readSealMember(oversized) as string, /lists 65 recipients, over the limit of 64/);
    const opened = openPayload(binding, oversized, new Uint8Array(32), [sealingIdentityKey(handler.privateKey)]);
    assert.equal(!opened.ok && opened.reason, 'malformed');
  });

  it('a seal member not written as the protocol says is malformed, naming the field', () => {
    const { seal, body } = sealPayload(1, binding, [sealingRecipient(handler.publicKey)]);
    const keys = [sealingIdentityKey(handler.privateKey)];
    const cases: Array<[unknown, RegExp]> = [
      ['x', /'seal' must be an object/],
      [{ ...seal, alg: 'none' }, /'seal.alg'/],
      [{ ...seal, form: 'xml' }, /'seal.form'/],
      [{ ...seal, epk: 'AAAA' }, /'seal.epk'/],
      [{ ...seal, nonce: seal.epk }, /'seal.nonce'/],
      [{ ...seal, to: [] }, /'seal.to'/],
      [{ ...seal, to: [{ kid: 'ABC', key: seal.to[0]!.key }] }, /'seal.to.0.kid'/],
      [{ ...seal, to: [{ kid: seal.to[0]!.kid, key: 'AA==' }] }, /'seal.to.0.key'/],
      [{ ...seal, to: [seal.to[0], seal.to[0]] }, /listed twice/],
      [{ form: seal.form, alg: seal.alg, epk: seal.epk, nonce: seal.nonce, to: seal.to }, /in this order/],
      [{ ...seal, extra: 1 }, /must have the fields/],
    ];
    for (const [member, why] of cases) {
      assert.match(readSealMember(member) as string, why);
      const opened = openPayload(binding, member, body, keys);
      assert.equal(!opened.ok && opened.reason, 'malformed');
    }
    assert.equal(((r) => !r.ok && r.reason)(openPayload(binding, seal, 'not bytes', keys)), 'malformed');
  });

  it('an all-zero ephemeral key is refused as undecryptable, not thrown', () => {
    const { seal, body } = sealPayload(1, binding, [sealingRecipient(handler.publicKey)]);
    const opened = openPayload(binding, { ...seal, epk: Buffer.alloc(32).toString('base64') }, body, [sealingIdentityKey(handler.privateKey)]);
    assert.equal(!opened.ok && opened.reason, 'undecryptable');
  });

  it('a sealed command is a binary message with the seal member right after body and acceptBy still last', () => {
    const command = commandMessage({ source: 'alice~s1', destination: 'h1', token: 't1', payload: { secret: 'x' }, priority: 'normal', deadline: 1, acceptBy: 5 });
    const { seal, body } = sealPayload(command.payload, binding, [sealingRecipient(handler.publicKey)]);
    const wire = encodeMessage(sealedEnvelope(command, seal, body)) as Uint8Array;
    const framed = splitFrame(wire)!;
    assert.deepEqual(Object.keys(framed.header), ['v', 'type', 'source', 'destination', 'token', 'body', 'seal', 'priority', 'deadline', 'ts', 'acceptBy']);
    assert.ok(!Buffer.from(wire).includes('secret'));
    const decoded = decode(wire);
    assert.ok(decoded.ok);
    assert.deepEqual(openPayload(binding, decoded.envelope.seal, decoded.envelope.payload, [sealingIdentityKey(handler.privateKey)]), { ok: true, payload: { secret: 'x' }, seal });
  });
});

describe('the client seals for identities (protocol §3.6, §12.5)', () => {
  const pairs = Array.from({ length: MAX_SEAL_RECIPIENTS + 1 }, () => generateKeyPairSync('x25519'));
  const keys = pairs.map((pair, n) => ({ identity: `id${n}`, publicKey: pair.publicKey }));
  const note = () => notificationMessage({ source: 'alice~s1', payload: { n: 1 }, priority: 'normal' });

  it('seals for every unrevoked key of an identity: old and new keys both open during a rotation, a revoked one is left out', () => {
    const rotated = [{ identity: 'bob', publicKey: pairs[0]!.publicKey }, { identity: 'bob', publicKey: pairs[1]!.publicKey }, { identity: 'bob', publicKey: pairs[2]!.publicKey, revoked: '2026-01-01T00:00:00Z' }];
    const sealed = new Sealing({ keys: rotated }).seal(note(), ['bob~tab1']);
    assert.deepEqual((sealed.seal as SealMember).to.map((recipient) => recipient.kid), [kidOf(pairs[0]!.publicKey), kidOf(pairs[1]!.publicKey)]);
    for (const pair of pairs.slice(0, 2)) {
      const opened = new Sealing({ privateKey: pair.privateKey, keys: [] }).open(sealed);
      assert.ok(opened.ok && (opened.envelope.payload as { n: number }).n === 1);
    }
    const revoked = new Sealing({ privateKey: pairs[2]!.privateKey, keys: [] }).open(sealed);
    assert.equal(!revoked.ok && revoked.reason, 'not-for-me');
  });

  it('a resolver is asked at each seal: a key it stops returning is no longer sealed for', () => {
    let current = [keys[0]!];
    const sealing = new Sealing({ keys: () => current.map((key) => ({ ...key, identity: 'bob' })) });
    assert.equal((sealing.seal(note(), ['bob']).seal as SealMember).to[0]!.kid, kidOf(pairs[0]!.publicKey));
    current = [];
    assert.throws(() => sealing.seal(note(), ['bob']), (error: unknown) => error instanceof SealingError && /no sealing key for identity bob/.test(error.message));
  });

  it('refuses to leave a required recipient out past 64 keys; optional ones are dropped', () => {
    const sealing = new Sealing({ keys });
    const identities = keys.map((key) => key.identity);
    assert.throws(() => sealing.seal(note(), identities), (error: unknown) => error instanceof SealingError && /at most 64 keys/.test(error.message) && /id64/.test(error.message));
    const sealed = sealing.seal(note(), identities.slice(0, 1), identities.slice(1));
    assert.equal((sealed.seal as SealMember).to.length, MAX_SEAL_RECIPIENTS);
    assert.equal(sealing.stats.sealed, 1);
  });
});

describe('the sealing keys file (protocol §12.5)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-sealing-keys-'));
  const file = path.join(dir, 'sealing-keys.json');

  it('generates a key pair: the private key 0600 beside the signing key, the public one in the file', () => {
    const signing = generateSigningKey(path.join(dir, 'signing-keys.json'), 'alice', dir);
    const made = generateSealingKey(file, 'alice', dir);
    assert.equal(made.privateKeyFile, path.join(dir, 'alice.sealing.key'));
    assert.notEqual(made.privateKeyFile, signing.privateKeyFile);
    assert.equal(fs.statSync(made.privateKeyFile).mode & 0o777, 0o600);
    const privateKey = readSealingPrivateKey(made.privateKeyFile);
    assert.equal(sealingKeyIdOf(privateKey), made.kid);
    const [record] = listSealingKeys(file);
    assert.equal(record!.kid, made.kid);
    assert.equal(record!.identity, 'alice');
    const [loaded] = loadSealingKeys(file);
    assert.equal(sealingKeyIdOf(loaded!.publicKey as KeyObject), made.kid);
    assert.throws(() => generateSealingKey(file, 'alice', dir), /exists already/);
    assert.throws(() => readSealingPrivateKey(signing.privateKeyFile), /an X25519 private key is needed, got ed25519/);
  });

  it('revokes a key: it stays in the file, marked', () => {
    const [record] = listSealingKeys(file);
    assert.equal(revokeSealingKey(file, record!.kid), true);
    assert.equal(revokeSealingKey(file, record!.kid), false);
    assert.ok(loadSealingKeys(file)[0]!.revoked);
  });

  it('refuses a file whose key id is not its key, and a signing key in a sealing keys file', () => {
    const text = JSON.parse(fs.readFileSync(file, 'utf8')) as { keys: Record<string, unknown> };
    const [kid, entry] = Object.entries(text.keys)[0]!;
    const wrong = path.join(dir, 'wrong.json');
    fs.writeFileSync(wrong, JSON.stringify({ version: 1, keys: { '0123456789abcdef': entry } }));
    assert.throws(() => listSealingKeys(wrong), new RegExp(`this key's id is ${kid}, not 0123456789abcdef`));
    const signingFile = JSON.parse(fs.readFileSync(path.join(dir, 'signing-keys.json'), 'utf8')) as unknown;
    fs.writeFileSync(wrong, JSON.stringify(signingFile));
    assert.throws(() => listSealingKeys(wrong), /an X25519 key is needed, got ed25519/);
    assert.deepEqual(listSealingKeys(path.join(dir, 'absent.json')), []);
  });
});
