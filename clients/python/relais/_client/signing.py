"""Signed envelopes in the client (protocol §12), a port of `src/client/connection/signing.ts`
and the keys file reader of `src/security/signing-keys.ts`: the signer the transport passes
every message through before it is written, and the verifier the bus asks about every message
received, before any part of the client or any subscription sees it. The wire rules (layout,
signed text, the checks in order, the replay window) are `relais.protocol.signature` and
`relais.protocol.replay_window`; this is their shell: keys from files, counting, logging.

Needs `cryptography` (`relais.signing_available()`); without it `connect()` refuses
`signing_key` and `trusted_keys` with a ValueError saying so.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Iterable, Mapping, Optional, Union

from ..protocol.envelope import DecodeResult
from ..protocol.signature import (DEFAULT_MAX_SENDERS, REFUSAL_REASONS, Signer as _WireSigner, TrustedKey, Verifier as _WireVerifier,
                                  key_id_of, load_private_key, parse_public_key, signing_available)
from ..protocol.topics import check_client_id
from .key_source import KeySource, read_key_source, read_keys_file

log = logging.getLogger("relais.signatures")

#: What each refusal reason means, for the warning line (protocol §12.4).
WHY = {
    "unsigned": "no signature, and this client requires one",
    "malformed": "its sig member is not written as protocol §12.2 says",
    "unknown-key": "signed with a key this client does not know",
    "revoked-key": "signed with a revoked key",
    "wrong-identity": "signed with the key of another identity than its source",
    "forged": "the signature does not match the message and its topic",
    "stale": "its signature time is outside the accepted clock skew",
    "replayed": "its sequence number was seen before (a replay or a duplicate)",
}



def _need() -> None:
    if not signing_available():
        raise ValueError("signed envelopes (protocol §12) need the 'cryptography' package, which does not import here "
                         "(apt-get install python3-cryptography)")


def read_private_key(key: KeySource) -> Any:
    """An Ed25519 private key: a `cryptography` key object, PEM text (PKCS #8), or the path of a
    PEM file as `relais identity keygen` writes it. ValueError saying why not (never the key)."""
    _need()

    def from_object(key: Any) -> Any:
        if hasattr(key, "sign") and hasattr(key, "public_key"):
            try:
                key_id_of(key)
            except Exception as problem:  # noqa: BLE001 - any other kind of key
                raise ValueError(f"signing_key must be an Ed25519 private key: {problem}") from None
            return key
        raise ValueError("signing_key must be an Ed25519 private key (a cryptography key, PEM text or a PEM file's path)")
    return read_key_source(key, "signing_key", load_private_key, from_object)


def load_keys_file(path: Union[str, os.PathLike]) -> list[TrustedKey]:
    """The public keys file (`relais identity keygen` writes it; docs/security.md "Signed
    envelopes"), checked as the TS library checks it, each key id against its key."""
    _need()
    return [TrustedKey(*entry) for entry in read_keys_file(path, parse_public_key, key_id_of)]


def _trusted(key: Any) -> TrustedKey:
    if isinstance(key, TrustedKey):
        return key
    if isinstance(key, Mapping):
        identity = key.get("identity")
        public = key.get("public_key", key.get("publicKey"))
        if not isinstance(identity, str) or check_client_id(identity):
            raise ValueError("trusted_keys: each key needs an 'identity' that is a client id (protocol §2.1)")
        if isinstance(public, str):
            try:
                public = parse_public_key(public)
            except TypeError as problem:
                raise ValueError(f"trusted_keys: the key of {identity}: {problem}") from None
        elif public is not None and hasattr(public, "public_key"):
            public = public.public_key()
        if public is None or not hasattr(public, "verify"):
            raise ValueError(f"trusted_keys: the key of {identity} is missing or not an Ed25519 public key")
        return TrustedKey(identity, public, bool(key.get("revoked")))
    raise ValueError("trusted_keys: each key is a dict {'identity', 'public_key', 'revoked'?} (or a keys file's path)")


def read_trusted_keys(keys: Any) -> list[TrustedKey]:
    """`trusted_keys`: the path of a keys file, or a list of `{"identity", "public_key" (PEM, raw
    base64 or a key object), "revoked"?}` dicts (`relais.protocol.signature.TrustedKey` too)."""
    _need()
    if isinstance(keys, (str, bytes, os.PathLike)):
        return load_keys_file(keys)
    if isinstance(keys, Iterable):
        return [_trusted(key) for key in keys]
    raise ValueError("trusted_keys must be a keys file's path or a list of keys")


class ClientSigner:
    """Signs what this client writes, one sequence per start (protocol §12.3)."""

    def __init__(self, private_key: Any) -> None:
        self._signer = _WireSigner(private_key)
        self.kid = self._signer.kid
        self.public_key = private_key.public_key()
        self.signed = 0

    def sign(self, topic: str, body: Union[str, bytes]) -> Union[str, bytes]:
        signed = self._signer.sign(topic, body, int(time.time() * 1000))
        if signed is not body:
            self.signed += 1
        return signed


class ClientVerifier:
    """Checks what this client receives (protocol §12.4); counts and logs each refusal."""

    def __init__(self, keys: list[TrustedKey], own: Optional[ClientSigner], identity: str, require: bool, max_skew_s: float) -> None:
        if require and own is None:
            raise ValueError("trusted_keys with require_signatures needs signing_key too: this client's own messages (its presence) "
                             "must pass its own check; give signing_key, or require_signatures=False")
        table: dict[str, TrustedKey] = {}
        # Our own messages come back to our subscriptions (our presence among them).
        if own is not None:
            table[own.kid] = TrustedKey(identity, own.public_key)
        for key in keys:
            table[key_id_of(key.public_key)] = key
        self.require = require
        self._verifier = _WireVerifier(table, require=require, max_skew_ms=max_skew_s * 1000, max_senders=DEFAULT_MAX_SENDERS)
        self.verified = 0
        self.refused = {reason: 0 for reason in REFUSAL_REASONS}
        #: Called with each refusal `{"topic", "reason", "lane", "source"?}` after its warning line.
        self.on_refused: list[Callable[[dict], None]] = []

    @property
    def stats(self) -> dict:
        windows = self._verifier.windows
        return {"verified": self.verified, "refused": dict(self.refused), "senders_tracked": windows.size,
                "unsafe_evictions": windows.unsafe_evictions}

    def admitted(self, topic: str, payload: bytes, presence: bool, retained: bool, lane: str,
                 decoded: Callable[[], DecodeResult]) -> bool:
        """Whether a received message may go on. A presence is old by nature (retained, or a will
        written at connect time), as is any retained message: their signature is checked, not their
        freshness. A cleared presence (empty payload) has nothing to sign and passes."""
        if presence and len(payload) == 0:
            return True
        result = decoded()
        envelope = result.envelope if result.ok else None
        reason = self._verifier.refusal(topic, payload, envelope, time.time() * 1000, fresh_only=not presence and not retained)
        if reason is None:
            if envelope is not None and "sig" in envelope:
                self.verified += 1
            return True
        self.refused[reason] += 1
        source = envelope.get("source") if envelope is not None else getattr(result.sender, "source", None)
        log.warning("message refused: %s (topic %s, source %s)", WHY[reason], topic, source if isinstance(source, str) else "(unreadable)",
                    extra={"topic": topic, "reason": reason})
        refusal = {"topic": topic, "reason": reason, "lane": lane}
        if isinstance(source, str):
            refusal["source"] = source
        for listener in list(self.on_refused):
            try:
                listener(refusal)
            except Exception:  # noqa: BLE001
                log.exception("a refused listener failed")
        return False
