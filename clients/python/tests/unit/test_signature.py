"""Signed envelopes (protocol §12): the layout, a signature made by the TS library verified
here and made identically here (Ed25519 is deterministic), the replay window's table (§12.3),
and a verifier's refusals in the order of §12.4. Skipped when cryptography is absent."""
from __future__ import annotations

import base64
import json
import random
import unittest

from relais.protocol.envelope import decode
from relais.protocol.framing import frame, split_frame
from relais.protocol.replay_window import WINDOW, ReplayWindows
from relais.protocol.signature import (
    SignatureHeader, Signer, TrustedKey, Verifier, append_signature, is_signable, key_id_of, load_private_key,
    parse_public_key, read_signature, sign_body, signature_matches, signing_available,
)

# A throwaway test key pair and a message the TS library signed with it (src/security/ed25519.ts).
TS_KID = "050cbe620ca53cf2"
TS_PUBLIC = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA0DP6r8pfPMvbrt2XseVP6sa2Dlt9u9VHsusAnbGgweI=\n-----END PUBLIC KEY-----\n"
TS_PRIVATE = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIDcpbf72e1YRt8mKzUu1uhFtkjtMueqofG9WYW9LzV14\n-----END PRIVATE KEY-----\n"
TS_SIGNED = "{\"v\":1,\"type\":\"response\",\"source\":\"h1\",\"destination\":\"vm-x\",\"token\":\"t1\",\"final\":true,\"payload\":{\"n\":\"é\"},\"code\":0,\"priority\":\"normal\",\"ts\":1796097844599,\"sig\":{\"kid\":\"050cbe620ca53cf2\",\"boot\":\"9b1f0c6a2d4e8f17\",\"seq\":12,\"ts\":1796097844599,\"sig\":\"ZPQGDZ/SPte+VE5Oe9P7hG9ar8igN1jz+JQps2A0QRuVb32piCDoM6It/TAHsDKzyVHl3eTRR3CpUChtfvcaDg==\"}}"
TOPIC = "demo/a/response/vm-x"
# A binary message (protocol §3.5) the TS library signed with the same key: the signature covers
# `… ␀ header ␀ body` (§12.2); the body 00 0A FF 7D holds an LF and a closing brace.
TS_SIGNED_BINARY = base64.b64decode(
    "eyJ2IjoxLCJ0eXBlIjoicmVzcG9uc2UiLCJzb3VyY2UiOiJoMSIsImRlc3RpbmF0aW9uIjoidm0teCIsInRva2VuIjoidDEiLCJmaW5hbCI6dHJ1ZSwiYm9keSI6NCwiY29kZSI6MCwicHJpb3JpdHkiOiJub3JtYWwiLCJ0cyI6MTc5NjA5Nzg0NDU5OSwic2lnIjp7ImtpZCI6IjA1MGNiZTYyMGNhNTNjZjIiLCJib290IjoiOWIxZjBjNmEyZDRlOGYxNyIsInNlcSI6MTMsInRzIjoxNzk2MDk3ODQ0NTk5LCJzaWciOiJwV2tQSnU2R1FENDRVZ3lLZzY1RndQTHZPL1Npb0NhT0d2bWJkb3Z6bkxMOGlXSG9ZNFk3YTZVaUQ2Y0loaXAzK1ZyV0gycG85dU51Lzk0aTg1NTZDUT09In19CgAK/30=")


class LayoutTest(unittest.TestCase):
    def test_the_member_is_read_back_exactly_as_written_and_anything_else_is_malformed(self) -> None:
        body = '{"v":1,"type":"log","source":"a","destination":"*","payload":{}}'
        header = SignatureHeader("0123456789abcdef", "fedcba9876543210", 7, 1796097844599)
        signed = append_signature(body, header, "A" * 86 + "==")
        read = read_signature(signed)
        self.assertEqual((read.kid, read.boot, read.seq, read.ts, read.unsigned), (header.kid, header.boot, 7, header.ts, body))
        self.assertTrue(decode(signed).ok, "a signed message is a normal envelope to whoever does not verify")
        for broken in (signed.replace('"seq":7', '"seq": 7'), signed + " ", signed.replace("==", "="), body,
                       signed.replace('"seq":7', '"seq":99999999999999999')):
            self.assertIsNone(read_signature(broken), broken[-60:])
        self.assertTrue(is_signable(body))
        self.assertFalse(is_signable("{}"))
        self.assertFalse(is_signable('"text"'))


@unittest.skipUnless(signing_available(), "cryptography is not installed")
class Ed25519Test(unittest.TestCase):
    def test_a_message_signed_by_the_ts_library_verifies_and_signing_it_here_gives_the_same_text(self) -> None:
        public = parse_public_key(TS_PUBLIC)
        self.assertEqual(key_id_of(public), TS_KID)
        read = read_signature(TS_SIGNED)
        self.assertTrue(signature_matches(TOPIC, read, public))
        self.assertFalse(signature_matches("demo/b/response/vm-x", read, public), "the topic is signed")
        private = load_private_key(TS_PRIVATE)
        self.assertEqual(sign_body(TOPIC, read.unsigned, SignatureHeader(read.kid, read.boot, read.seq, read.ts), private), TS_SIGNED)
        raw = TS_PUBLIC.splitlines()[1]
        self.assertEqual(key_id_of(parse_public_key(raw[-44:])), TS_KID, "the base64 of the raw 32 bytes also reads")
        with self.assertRaises(TypeError):
            parse_public_key("not a key")

    def test_a_binary_message_signed_by_the_ts_library_verifies_over_its_body_and_signing_it_here_gives_the_same_bytes(self) -> None:
        public = parse_public_key(TS_PUBLIC)
        framed = split_frame(TS_SIGNED_BINARY)
        self.assertEqual(framed.body, b"\x00\n\xff}")
        read = read_signature(framed.header_text)
        self.assertTrue(signature_matches(TOPIC, read, public, framed.body))
        self.assertFalse(signature_matches(TOPIC, read, public, b"\x00\n\xff~"), "the body is signed")
        self.assertFalse(signature_matches(TOPIC, read, public), "as a JSON message the signature does not hold")
        private = load_private_key(TS_PRIVATE)
        header = SignatureHeader(read.kid, read.boot, read.seq, read.ts)
        self.assertEqual(frame(sign_body(TOPIC, read.unsigned, header, private, framed.body), framed.body), TS_SIGNED_BINARY)
        # The verifier reads the signature from the header and checks it over the body.
        verifier = Verifier({TS_KID: TrustedKey("h1", public)})
        envelope = decode(TS_SIGNED_BINARY).envelope
        self.assertEqual(envelope["payload"], framed.body)
        self.assertIsNone(verifier.refusal(TOPIC, TS_SIGNED_BINARY, envelope, read.ts))
        changed = TS_SIGNED_BINARY[:-1] + b"~"
        self.assertEqual(verifier.refusal(TOPIC, changed, decode(changed).envelope, read.ts), "forged")
        # A Signer frames what it signs: the sig member last in the header, the body unchanged.
        signer = Signer(private)
        unsigned = frame(read.unsigned, framed.body)
        signed = signer.sign(TOPIC, unsigned, read.ts)
        self.assertEqual(split_frame(signed).body, framed.body)
        self.assertIsNone(Verifier({TS_KID: TrustedKey("h1", public)}).refusal(TOPIC, signed, decode(signed).envelope, read.ts))
        self.assertEqual(signer.sign(TOPIC, b"\x00raw bytes", read.ts), b"\x00raw bytes", "raw bytes are sent unsigned")

    def test_a_verifier_refuses_in_the_order_of_its_table(self) -> None:
        private = load_private_key(TS_PRIVATE)
        signer = Signer(private)
        keys = {TS_KID: TrustedKey("h1", parse_public_key(TS_PUBLIC))}
        verifier = Verifier(keys)
        now = 1_796_097_844_599

        def check(text: str, topic: str = TOPIC, at: float = now, fresh_only: bool = True, on: Verifier = verifier):
            result = decode(text)
            return on.refusal(topic, text, result.envelope if result.ok else None, at, fresh_only)

        body = '{"v":1,"type":"notification","source":"h1","destination":"*","payload":{"x":1}}'
        first = signer.sign(TOPIC, body, now)
        self.assertIsNone(check(first))
        self.assertEqual(check(first), "replayed")
        self.assertIsNone(check(signer.sign(TOPIC, body, now)), "the next seq is fresh")
        self.assertEqual(check(body), "unsigned")
        self.assertIsNone(Verifier(keys, require=False).refusal(TOPIC, body, decode(body).envelope, now))
        self.assertEqual(check(first.replace('"seq":', '"seq": ')), "malformed", "valid JSON, but not the member of §12.2")
        self.assertEqual(check(first[:-3] + "}}"), "unsigned", "not a valid envelope")
        self.assertEqual(check(first.replace(TS_KID, "0" * 16)), "unknown-key")
        self.assertEqual(check(signer.sign(TOPIC, body, now), on=Verifier({TS_KID: TrustedKey("h1", parse_public_key(TS_PUBLIC), revoked=True)})), "revoked-key")
        self.assertEqual(check(signer.sign(TOPIC, body.replace('"h1"', '"h2"'), now)), "wrong-identity")
        self.assertEqual(check(signer.sign(TOPIC, body, now), topic="demo/other"), "forged")
        self.assertEqual(check(signer.sign(TOPIC, body, now).replace('"x":1', '"x":2')), "forged")
        self.assertEqual(check(signer.sign(TOPIC, body, now - 30_001)), "stale")
        self.assertEqual(check(signer.sign(TOPIC, body, now + 30_001)), "stale", "either way")
        old = signer.sign(TOPIC, body, now - 60_000)
        self.assertIsNone(check(old, fresh_only=False), "a presence or retained message: signature and identity only")
        self.assertEqual(signer.sign(TOPIC, '"a string"', now), '"a string"', "a text that is not an object is sent unsigned")


class ReplayWindowTest(unittest.TestCase):
    def test_the_table_of_protocol_12_3(self) -> None:
        windows = ReplayWindows(10, 30_000)
        self.assertEqual(windows.check("k b", 5, 0, 0), "fresh", "above the highest")
        self.assertEqual(windows.check("k b", 3, 0, 0), "fresh", "within the window, not seen (overtaken)")
        self.assertEqual(windows.check("k b", 3, 0, 0), "replayed", "seen before")
        self.assertEqual(windows.check("k b", 5, 0, 0), "replayed")
        self.assertEqual(windows.check("k b", 5 + WINDOW, 0, 0), "fresh")
        self.assertEqual(windows.check("k b", 5, 0, 0), "replayed", "1024 or more below the highest")
        self.assertEqual(windows.check("k b", 6, 0, 0), "fresh", "1023 below: still in the window")
        self.assertEqual(windows.check("k other-boot", 5, 0, 0), "fresh", "another stream")

    def test_any_order_within_the_window_each_seq_fresh_once(self) -> None:
        rng = random.Random(41)
        for _ in range(50):
            windows = ReplayWindows(10, 30_000)
            seqs = list(range(1, 400))
            rng.shuffle(seqs)
            seen = set()
            for seq in seqs + rng.sample(seqs, 50):
                verdict = windows.check("s", seq, 0, 0)
                self.assertEqual(verdict, "replayed" if seq in seen else "fresh")
                seen.add(seq)

    def test_bounded_least_recently_used_forgotten_first_unsafe_ones_counted(self) -> None:
        windows = ReplayWindows(2, 30_000)
        windows.check("a", 1, 0, 0)
        windows.check("b", 1, 0, 0)
        windows.check("a", 2, 0, 0)
        windows.check("c", 1, 0, 10_000)  # forgets b, heard 10 s ago: within the skew
        self.assertEqual((windows.size, windows.unsafe_evictions), (2, 1))
        self.assertEqual(windows.check("b", 1, 0, 10_000), "fresh", "b was forgotten")
        before = windows.unsafe_evictions
        windows.check("d", 1, 100_000, 100_000)  # forgets the least recently used, heard long ago: safe
        self.assertEqual(windows.unsafe_evictions, before)


if __name__ == "__main__":
    unittest.main()
