"""Sealed payloads (protocol §3.6, §12.5), the cases of test/unit/sealing.test.ts: a command the
TS library sealed opens here, what this package seals opens with the document's recipe written
again from its text (and the other way), tampering, moved bodies, malformed seal members, the 64
recipients cap, the client's choice of keys (rotation, revocation, a resolver) and the sealing
keys file. Skipped when cryptography is absent (the layout checks run without it)."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import unittest

from relais.protocol.envelope import decode, encode_message
from relais.protocol.errors import SealingError
from relais.protocol.framing import split_frame
from relais.protocol.messages import command_message, notification_message
from relais.protocol.sealing import (
    MAX_SEAL_RECIPIENTS, open_payload, read_seal_member, seal_payload, sealed_envelope, sealing_available, sealing_identity_key,
    sealing_key_id, sealing_recipient,
)

# Throwaway X25519 keys and what the TS library sealed with them (src/security/sealing.ts, made
# with a node script: sealPayload, sealedEnvelope, encodeMessage). The command is sealed for A
# and B, binding {type command, source alice~s1, token t1}; the bytes 00 0A FF 7D 7B are sealed
# for A as a response of h1 to t1.
A_PRIVATE = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VuBCIEILilGZ+lFFN2Q4OBe8HNsM6GW7UP6HO27cpGiH3fOglf\n-----END PRIVATE KEY-----\n"
A_PUBLIC = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VuAyEA4aVCPggBYxI/DCP8U0Np31Q9/RTuayomtvQ6aEGwjHw=\n-----END PUBLIC KEY-----\n"
A_KID = "d65233fe61bb43a9"
B_PRIVATE = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VuBCIEIKhupQI/q2wYqI8KcSTX7dCjVUoIFAqkn3a/XLHYhvRj\n-----END PRIVATE KEY-----\n"
B_KID = "05e599596e7dd5fa"
TS_COMMAND = base64.b64decode(
    "eyJ2IjoxLCJ0eXBlIjoiY29tbWFuZCIsInNvdXJjZSI6ImFsaWNlfnMxIiwiZGVzdGluYXRpb24iOiJoMSIsInRva2VuIjoidDEiLCJib2R5Ijo2NSwic2VhbCI6eyJhbGciOiJYMjU1"
    "MTktSEtERi1TSEEyNTYtQTI1NkdDTSIsImZvcm0iOiJqc29uIiwiZXBrIjoiQTBnS0pPVmxoUk9LWjM0cnphU2oxSFV5OTRpemVTNVdRZVN6V3FmZ2Uxbz0iLCJub25jZSI6IkMx"
    "dWVmcWVHaDZIVStNMG4iLCJ0byI6W3sia2lkIjoiZDY1MjMzZmU2MWJiNDNhOSIsImtleSI6Ik1ZWWc3Y1I5OWxRcVk0NXR2UkljdXZOeDdlVktJT3VESW1MeXhzUUFkcGtOMUFw"
    "ZWt1VnZQREtKZmNTTzM4Y3MifSx7ImtpZCI6IjA1ZTU5OTU5NmU3ZGQ1ZmEiLCJrZXkiOiJ0K2taWkROQkgxSzBFd1F0OTBxa00xSFhXYUN2Y083U0NhNnhnYis0TjZhTE9pdDM1"
    "YkR0T3NjNDl2dzNneFI2In1dfSwicHJpb3JpdHkiOiJub3JtYWwiLCJkZWFkbGluZSI6MTc5NjU2MDY5MzY3OCwidHMiOjE3OTY2MDI2NzcwMzUsImFjY2VwdEJ5IjoxNzk2NTYw"
    "NjY0MDAwfQpTFnRt+NJ92aIy5E2LL/2AE/zguZ5DPM2hHs6jXfiYt+8hAomAJ5zg6DyaswrDxtpmxtf+yKrKW9mqaQN9S1lgkw==")
TS_COMMAND_PAYLOAD = {"secret": "attack at dawn", "n": 3, "é": [1.5, None]}
TS_BYTES_SEAL = {"alg": "X25519-HKDF-SHA256-A256GCM", "form": "bytes", "epk": "1nOoegewN60mQ/ocazQAehnFAsFg6ye11Gf+9DttTEg=",
                 "nonce": "FNOC6TqOfBBYubKC",
                 "to": [{"kid": A_KID, "key": "byTQuiFrP8FP2h6HQYN1tHuzncvLIPeN6+3SK0XJ6538+tjZyeMKP0uqo5NOLT0o"}]}
TS_BYTES_BODY = base64.b64decode("KQx9SbpbrJpOPFRS8eLwlKvOs5sU")
# An Ed25519 (signing) public key, which a sealing keys file must refuse (test_signature.py's).
ED25519_PUBLIC = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA0DP6r8pfPMvbrt2XseVP6sa2Dlt9u9VHsusAnbGgweI=\n-----END PUBLIC KEY-----\n"

BINDING = ("command", "alice~s1", "t1")

if sealing_available():
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from relais._client.sealing import ClientSealing, load_sealing_keys_file, read_sealing_keys, read_sealing_private_key
    from relais.protocol.sealing import load_sealing_private_key


def _raw(key) -> bytes:
    public = key.public_key() if isinstance(key, X25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _kid(key) -> str:
    return hashlib.sha256(_raw(key)).hexdigest()[:16]


def _kek(shared: bytes, epk: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=epk + recipient, info=b"relais-seal/1 key").derive(shared)


def foreign_open(seal: dict, body: bytes, private_key, type_: str, source: str, token: str) -> bytes:
    """protocol §3.6, written again here from the document's text: what a foreign peer does to open."""
    kid = _kid(private_key)
    entry = next(r for r in seal["to"] if r["kid"] == kid)
    epk = base64.b64decode(seal["epk"])
    kek = _kek(private_key.exchange(X25519PublicKey.from_public_bytes(epk)), epk, _raw(private_key))
    cek = AESGCM(kek).decrypt(bytes(12), base64.b64decode(entry["key"]), kid.encode())
    aad = f"relais-seal/1\0{type_}\0{source}\0{token}\0{seal['form']}\0{seal['epk']}".encode()
    return AESGCM(cek).decrypt(base64.b64decode(seal["nonce"]), body, aad)


def foreign_seal(plaintext: bytes, recipient, type_: str, source: str, token: str) -> tuple[dict, bytes]:
    """The same, the other way: a foreign peer seals for our key."""
    ephemeral = X25519PrivateKey.generate()
    epk = _raw(ephemeral)
    cek, nonce, kid = os.urandom(32), os.urandom(12), _kid(recipient)
    key = AESGCM(_kek(ephemeral.exchange(recipient), epk, _raw(recipient))).encrypt(bytes(12), cek, kid.encode())
    epk_text = base64.b64encode(epk).decode()
    aad = f"relais-seal/1\0{type_}\0{source}\0{token}\0json\0{epk_text}".encode()
    body = AESGCM(cek).encrypt(nonce, plaintext, aad)
    return ({"alg": "X25519-HKDF-SHA256-A256GCM", "form": "json", "epk": epk_text, "nonce": base64.b64encode(nonce).decode(),
             "to": [{"kid": kid, "key": base64.b64encode(key).decode()}]}, body)


def _reason(opened) -> str:
    return "opened" if opened.ok else opened.reason


@unittest.skipUnless(sealing_available(), "cryptography is not installed")
class SealedPayloadsTest(unittest.TestCase):
    def setUp(self) -> None:
        self.handler = X25519PrivateKey.generate()
        self.keys = [sealing_identity_key(self.handler)]
        self.to_handler = [sealing_recipient(self.handler.public_key())]

    def test_a_command_the_ts_library_sealed_opens_here_with_either_key_and_its_header_is_in_wire_order(self) -> None:
        framed = split_frame(TS_COMMAND)
        self.assertEqual(list(framed.header), ["v", "type", "source", "destination", "token", "body", "seal", "priority", "deadline", "ts", "acceptBy"])
        self.assertNotIn(b"attack", TS_COMMAND)
        decoded = decode(TS_COMMAND)
        self.assertTrue(decoded.ok)
        envelope = decoded.envelope
        for private, kid in ((A_PRIVATE, A_KID), (B_PRIVATE, B_KID)):
            key = sealing_identity_key(private)
            self.assertEqual(key.kid, kid)
            opened = open_payload(envelope["type"], envelope["source"], envelope["token"], envelope["seal"], envelope["payload"], [key])
            self.assertTrue(opened.ok, opened.why)
            self.assertEqual(opened.payload, TS_COMMAND_PAYLOAD)
        moved = open_payload("command", "alice~s1", "t2", envelope["seal"], envelope["payload"], [sealing_identity_key(A_PRIVATE)])
        self.assertEqual(_reason(moved), "undecryptable")

    def test_bytes_the_ts_library_sealed_open_as_the_same_bytes(self) -> None:
        opened = open_payload("response", "h1", "t1", TS_BYTES_SEAL, TS_BYTES_BODY, [sealing_identity_key(A_PRIVATE)])
        self.assertTrue(opened.ok, opened.why)
        self.assertEqual(opened.payload, bytes([0, 10, 255, 125, 123]))

    def test_a_foreign_peer_following_the_document_opens_what_this_package_seals(self) -> None:
        seal, body = seal_payload({"secret": "attack at dawn", "n": 3}, *BINDING, self.to_handler)
        self.assertIs(read_seal_member(seal), seal)
        self.assertEqual(list(seal), ["alg", "form", "epk", "nonce", "to"])
        self.assertEqual(seal["form"], "json")
        self.assertEqual(len(body), len('{"secret":"attack at dawn","n":3}') + 16)
        self.assertEqual(foreign_open(seal, body, self.handler, *BINDING), b'{"secret":"attack at dawn","n":3}')

    def test_this_package_opens_what_a_foreign_peer_seals_following_the_document(self) -> None:
        seal, body = foreign_seal(b'{"hello":"world"}', self.handler.public_key(), *BINDING)
        opened = open_payload(*BINDING, seal, body, self.keys)
        self.assertEqual((opened.ok, opened.payload, opened.seal), (True, {"hello": "world"}, seal))

    def test_the_key_id_is_the_first_16_hex_digits_of_the_sha256_of_the_raw_public_key(self) -> None:
        self.assertEqual(sealing_key_id(self.handler.public_key()), _kid(self.handler))
        self.assertEqual(sealing_key_id(self.handler), _kid(self.handler))
        self.assertEqual(sealing_recipient(A_PUBLIC).kid, A_KID)
        self.assertEqual(sealing_recipient(A_PUBLIC.splitlines()[1][-44:]).kid, A_KID, "the base64 of the raw 32 bytes also reads")

    def test_a_bytes_payload_is_sealed_as_its_bytes_and_opened_as_bytes(self) -> None:
        data = os.urandom(1000)
        seal, body = seal_payload(data, *BINDING, self.to_handler)
        self.assertEqual(seal["form"], "bytes")
        self.assertNotIn(data[:16], body)
        opened = open_payload(*BINDING, seal, body, self.keys)
        self.assertEqual((opened.ok, opened.payload), (True, data))

    def test_each_recipient_opens_with_its_own_key_and_a_key_not_listed_is_not_for_me(self) -> None:
        other, third = X25519PrivateKey.generate(), X25519PrivateKey.generate()
        seal, body = seal_payload("for two", *BINDING, [*self.to_handler, sealing_recipient(other.public_key())])
        self.assertEqual(len(seal["to"]), 2)
        for key in (self.handler, other):
            opened = open_payload(*BINDING, seal, body, [sealing_identity_key(key)])
            self.assertEqual((opened.ok, opened.payload), (True, "for two"))
        refused = open_payload(*BINDING, seal, body, [sealing_identity_key(third)])
        self.assertEqual(refused.reason, "not-for-me")
        self.assertEqual(refused.why, f"sealed for {_kid(self.handler)}, {_kid(other)}, this client holds {_kid(third)}")
        self.assertEqual(open_payload(*BINDING, seal, body, []).why, f"sealed for {_kid(self.handler)}, {_kid(other)}, this client holds no sealing key")

    def test_any_byte_of_the_body_changed_makes_it_undecryptable(self) -> None:
        seal, body = seal_payload({"amount": 100}, *BINDING, self.to_handler)
        for at in range(len(body)):
            tampered = bytearray(body)
            tampered[at] ^= 0x01
            self.assertEqual(_reason(open_payload(*BINDING, seal, bytes(tampered), self.keys)), "undecryptable", f"byte {at}")
        self.assertEqual(_reason(open_payload(*BINDING, seal, body[:-1], self.keys)), "undecryptable")

    def test_a_changed_wrapped_key_ephemeral_key_or_nonce_makes_it_undecryptable(self) -> None:
        seal, body = seal_payload({"amount": 100}, *BINDING, self.to_handler)

        def flip(text: str) -> str:
            data = bytearray(base64.b64decode(text))
            data[3] ^= 0x40
            return base64.b64encode(bytes(data)).decode()
        for changed in ({**seal, "to": [{**seal["to"][0], "key": flip(seal["to"][0]["key"])}]}, {**seal, "epk": flip(seal["epk"])},
                        {**seal, "nonce": flip(seal["nonce"])}):
            self.assertEqual(_reason(open_payload(*BINDING, changed, body, self.keys)), "undecryptable")

    def test_a_body_moved_into_another_envelope_does_not_open_the_aad_binds_it(self) -> None:
        seal, body = seal_payload({"amount": 100}, *BINDING, self.to_handler)
        for moved in (("command", "alice~s1", "t2"), ("command", "mallory~s1", "t1"), ("response", "alice~s1", "t1"), ("command", "alice~s1", None)):
            self.assertEqual(_reason(open_payload(*moved, seal, body, self.keys)), "undecryptable", moved)
        # The form is bound too: a json seal relabelled bytes would hand out the JSON text as bytes.
        self.assertEqual(_reason(open_payload(*BINDING, {**seal, "form": "bytes"}, body, self.keys)), "undecryptable")

    def test_seals_for_at_most_64_keys_and_a_seal_member_listing_more_is_malformed(self) -> None:
        many = [sealing_recipient(X25519PrivateKey.generate().public_key()) for _ in range(MAX_SEAL_RECIPIENTS + 1)]
        seal, _ = seal_payload(1, *BINDING, many[:MAX_SEAL_RECIPIENTS])
        self.assertEqual(len(seal["to"]), 64)
        with self.assertRaisesRegex(ValueError, "at most 64 keys, got 65"):
            seal_payload(1, *BINDING, many)
        with self.assertRaisesRegex(ValueError, "at least one recipient"):
            seal_payload(1, *BINDING, [])
        oversized = {**seal, "to": [*seal["to"], {"kid": "0123456789abcdef", "key": seal["to"][0]["key"]}]}
        self.assertRegex(read_seal_member(oversized), "lists 65 recipients, over the limit of 64")
        self.assertEqual(_reason(open_payload(*BINDING, oversized, bytes(32), self.keys)), "malformed")

    def test_a_seal_member_not_written_as_the_protocol_says_is_malformed_naming_the_field(self) -> None:
        seal, body = seal_payload(1, *BINDING, self.to_handler)
        entry = seal["to"][0]
        cases = [
            ("x", "'seal' must be an object"),
            ({**seal, "alg": "none"}, "'seal.alg'"),
            ({**seal, "form": "xml"}, "'seal.form'"),
            ({**seal, "epk": "AAAA"}, "'seal.epk'"),
            ({**seal, "nonce": seal["epk"]}, "'seal.nonce'"),
            ({**seal, "to": []}, "'seal.to'"),
            ({**seal, "to": [{"kid": "ABC", "key": entry["key"]}]}, "'seal.to.0.kid'"),
            ({**seal, "to": [{"kid": entry["kid"], "key": "AA=="}]}, "'seal.to.0.key'"),
            ({**seal, "to": [entry, entry]}, "listed twice"),
            ({"form": seal["form"], "alg": seal["alg"], "epk": seal["epk"], "nonce": seal["nonce"], "to": seal["to"]}, "in this order"),
            ({**seal, "extra": 1}, "must have the fields"),
        ]
        for member, why in cases:
            self.assertIn(why, read_seal_member(member))
            self.assertEqual(_reason(open_payload(*BINDING, member, body, self.keys)), "malformed", why)
        self.assertEqual(_reason(open_payload(*BINDING, seal, "not bytes", self.keys)), "malformed")

    def test_an_all_zero_ephemeral_key_is_refused_as_undecryptable_not_raised(self) -> None:
        seal, body = seal_payload(1, *BINDING, self.to_handler)
        forged = {**seal, "epk": base64.b64encode(bytes(32)).decode()}
        self.assertEqual(_reason(open_payload(*BINDING, forged, body, self.keys)), "undecryptable")

    def test_a_json_plaintext_that_is_not_json_text_is_malformed(self) -> None:
        seal, body = foreign_seal(b"{not json", self.handler.public_key(), *BINDING)
        opened = open_payload(*BINDING, seal, body, self.keys)
        self.assertEqual(_reason(opened), "malformed")
        self.assertIn('form "json", but the plaintext is not JSON text', opened.why)

    def test_a_sealed_command_is_a_binary_message_with_the_seal_right_after_body_and_accept_by_still_last(self) -> None:
        command = command_message(source="alice~s1", destination="h1", token="t1", payload={"secret": "x"}, priority="normal",
                                  deadline=1, accept_by=5)
        seal, body = seal_payload(command["payload"], *BINDING, self.to_handler)
        wire = encode_message(sealed_envelope(command, seal, body))
        self.assertEqual(list(split_frame(wire).header),
                         ["v", "type", "source", "destination", "token", "body", "seal", "priority", "deadline", "ts", "acceptBy"])
        self.assertNotIn(b"secret", wire)
        decoded = decode(wire)
        self.assertTrue(decoded.ok)
        opened = open_payload(*BINDING, decoded.envelope["seal"], decoded.envelope["payload"], self.keys)
        self.assertEqual((opened.ok, opened.payload, opened.seal), (True, {"secret": "x"}, seal))


@unittest.skipUnless(sealing_available(), "cryptography is not installed")
class ClientSealsForIdentitiesTest(unittest.TestCase):
    def setUp(self) -> None:
        self.pairs = [X25519PrivateKey.generate() for _ in range(MAX_SEAL_RECIPIENTS + 1)]
        self.keys = [{"identity": f"id{n}", "public_key": pair.public_key()} for n, pair in enumerate(self.pairs)]

    def note(self) -> dict:
        return notification_message(source="alice~s1", payload={"n": 1}, priority="normal")

    def test_seals_for_every_unrevoked_key_of_an_identity_old_and_new_open_during_a_rotation_a_revoked_one_is_left_out(self) -> None:
        rotated = [{"identity": "bob", "public_key": self.pairs[0].public_key()}, {"identity": "bob", "public_key": self.pairs[1].public_key()},
                   {"identity": "bob", "public_key": self.pairs[2].public_key(), "revoked": "2026-01-01T00:00:00Z"}]
        sealed = ClientSealing([], read_sealing_keys(rotated)).seal(self.note(), ["bob~tab1"])
        self.assertEqual([r["kid"] for r in sealed["seal"]["to"]], [_kid(self.pairs[0]), _kid(self.pairs[1])])
        for pair in self.pairs[:2]:
            opened = ClientSealing([pair], read_sealing_keys([])).open(sealed)
            self.assertTrue(opened.ok)
            self.assertEqual(opened.envelope["payload"], {"n": 1})
            self.assertEqual(opened.envelope["seal"], sealed["seal"], "the seal member stays")
        revoked = ClientSealing([self.pairs[2]], read_sealing_keys([]))
        self.assertEqual(revoked.open(sealed).reason, "not-for-me")
        self.assertEqual(revoked.stats["refused"]["not-for-me"], 1)

    def test_a_client_holding_several_private_keys_opens_with_any(self) -> None:
        sealed = ClientSealing([], read_sealing_keys([{"identity": "bob", "public_key": self.pairs[1].public_key()}])).seal(self.note(), ["bob"])
        rotating = ClientSealing([self.pairs[0], self.pairs[1]], read_sealing_keys([]))
        self.assertEqual(rotating.kids, [_kid(self.pairs[0]), _kid(self.pairs[1])])
        self.assertTrue(rotating.open(sealed).ok)
        self.assertEqual(rotating.stats["opened"], 1)

    def test_a_resolver_is_asked_at_each_seal_a_key_it_stops_returning_is_no_longer_sealed_for(self) -> None:
        current = [self.keys[0]]
        sealing = ClientSealing([], read_sealing_keys(lambda identity: [{**key, "identity": "bob"} for key in current]))
        self.assertEqual(sealing.seal(self.note(), ["bob"])["seal"]["to"][0]["kid"], _kid(self.pairs[0]))
        current = []
        with self.assertRaisesRegex(SealingError, "no sealing key for identity bob"):
            sealing.seal(self.note(), ["bob"])

    def test_refuses_to_leave_a_required_recipient_out_past_64_keys_optional_ones_are_dropped(self) -> None:
        sealing = ClientSealing([], read_sealing_keys(self.keys))
        identities = [key["identity"] for key in self.keys]
        with self.assertRaisesRegex(SealingError, "at most 64 keys.*id64"):
            sealing.seal(self.note(), identities)
        sealed = sealing.seal(self.note(), identities[:1], identities[1:])
        self.assertEqual(len(sealed["seal"]["to"]), MAX_SEAL_RECIPIENTS)
        self.assertEqual(sealing.stats["sealed"], 1)


@unittest.skipUnless(sealing_available(), "cryptography is not installed")
class SealingKeysFileTest(unittest.TestCase):
    """The file `relais identity keygen --seal` writes (src/security/keys-file.ts), as Python reads it."""

    def setUp(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def write(self, name: str, data: object) -> str:
        path = os.path.join(self.dir.name, name)
        with open(path, "w", encoding="utf-8") as file:
            file.write(data if isinstance(data, str) else json.dumps(data, indent=2))
        return path

    def test_reads_the_keys_and_the_private_key_file_marking_revoked_ones(self) -> None:
        path = self.write("sealing-keys.json", {"version": 1, "keys": {
            A_KID: {"identity": "alice", "publicKey": A_PUBLIC, "createdAt": "2026-12-06T15:20:00.000Z"},
            B_KID: {"identity": "bob", "publicKey": base64.b64encode(_raw(load_sealing_private_key(B_PRIVATE))).decode(),
                    "createdAt": "2026-12-06T15:20:00.000Z", "revoked": "2026-12-06T16:00:00.000Z"}}})
        keys = load_sealing_keys_file(path)
        self.assertEqual([(k.identity, sealing_key_id(k.public_key), k.revoked) for k in keys], [("alice", A_KID, False), ("bob", B_KID, True)])
        lookup = read_sealing_keys(path)
        self.assertEqual([r.kid for r in lookup("alice")], [A_KID])
        self.assertEqual(lookup("bob"), [], "nothing is sealed for a revoked key")
        private_file = self.write("alice.sealing.key", A_PRIVATE)
        self.assertEqual(sealing_key_id(read_sealing_private_key(private_file)), A_KID)
        self.assertEqual(load_sealing_keys_file(os.path.join(self.dir.name, "absent.json")), [])

    def test_refuses_a_file_whose_key_id_is_not_its_key_and_a_signing_key_in_a_sealing_keys_file(self) -> None:
        wrong = self.write("wrong.json", {"version": 1, "keys": {"0123456789abcdef": {"identity": "alice", "publicKey": A_PUBLIC, "createdAt": "x"}}})
        with self.assertRaisesRegex(ValueError, f"this key's id is {A_KID}, not 0123456789abcdef"):
            load_sealing_keys_file(wrong)
        signing = self.write("signing.json", {"version": 1, "keys": {"050cbe620ca53cf2": {"identity": "alice", "publicKey": ED25519_PUBLIC, "createdAt": "x"}}})
        with self.assertRaisesRegex(ValueError, "an X25519 key is needed, got ed25519"):
            load_sealing_keys_file(signing)
        with self.assertRaisesRegex(ValueError, "not valid JSON"):
            load_sealing_keys_file(self.write("bad.json", "{"))
        ed25519_private = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIDcpbf72e1YRt8mKzUu1uhFtkjtMueqofG9WYW9LzV14\n-----END PRIVATE KEY-----\n"
        with self.assertRaisesRegex(ValueError, "an X25519 private key is needed, got ed25519"):
            read_sealing_private_key(self.write("alice.key", ed25519_private))


if __name__ == "__main__":
    unittest.main()
