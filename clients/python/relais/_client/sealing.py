"""Sealed payloads in the client (protocol §3.6, §12.5), a port of `src/client/sealing.ts` and the
sealing keys file reader of `src/security/sealing-keys.ts`: the one place that seals what this
client sends for other identities (requests, their answers, notifications) and opens what
arrives sealed for it (the bus's inbound path, after the signature check and before any part of
the client sees the message), counting both (`bus.sealing`). The wire rules and the
cryptography are `relais.protocol.sealing`; this is their shell: keys from options and files.

Needs `cryptography` (`relais.sealing_available()`); without it `connect()` refuses
`sealing_key`, `sealing_keys` and `seal_requests` with a ValueError saying so.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Union

from ..protocol.errors import SealingError
from ..protocol.sealing import (MAX_SEAL_RECIPIENTS, SEAL_FAILURES, SEAL_MEMBER, SealingIdentityKey, SealingRecipient,
                                load_sealing_private_key, open_payload, parse_sealing_public_key, seal_payload,
                                sealed_envelope, sealing_available, sealing_identity_key, sealing_key_id, sealing_recipient)
from ..protocol.topics import check_client_id, identity_of_client_id
from .key_source import KeySource, read_key_source, read_keys_file



def _need() -> None:
    if not sealing_available():
        raise ValueError("sealed payloads (protocol §3.6) need the 'cryptography' package, which does not import here "
                         "(apt-get install python3-cryptography)")


def read_sealing_private_key(key: KeySource) -> Any:
    """An X25519 private key: a `cryptography` key object, PEM text (PKCS #8), or the path of the
    PEM file `relais identity keygen --seal` writes (`<identity>.sealing.key`). ValueError saying
    why not (never the key)."""
    _need()

    def from_object(key: Any) -> Any:
        try:
            return sealing_identity_key(key).private_key
        except (TypeError, AttributeError) as problem:
            raise ValueError(f"sealing_key must be an X25519 private key (a cryptography key, PEM text or a PEM file's path): {problem}") from None
    return read_key_source(key, "sealing_key", load_sealing_private_key, from_object)


@dataclass(frozen=True)
class PublicSealingKey:
    """A public sealing key and the identity it seals for (§12.5); nothing is sealed for a revoked one."""

    identity: str
    public_key: Any
    revoked: bool = False


def load_sealing_keys_file(path: Union[str, os.PathLike]) -> list[PublicSealingKey]:
    """The sealing keys file (`relais identity keygen --seal` writes `<data-dir>/sealing-keys.json`;
    protocol §12.5), checked as the TS library checks it, each key id against its key. Revoked
    keys are kept, marked (nothing is sealed for them). A missing file holds no key."""
    _need()
    return [PublicSealingKey(*entry) for entry in read_keys_file(path, parse_sealing_public_key, sealing_key_id, missing_is_empty=True)]


def _public_key(key: Any) -> PublicSealingKey:
    """One entry of `sealing_keys`: a PublicSealingKey, or `{"identity", "public_key" (PEM, raw
    base64 or a key object), "revoked"?}`."""
    if isinstance(key, PublicSealingKey):
        return key
    if isinstance(key, Mapping):
        identity = key.get("identity")
        public = key.get("public_key", key.get("publicKey"))
        if not isinstance(identity, str) or check_client_id(identity):
            raise ValueError("sealing_keys: each key needs an 'identity' that is a client id (protocol §2.1)")
        if public is None:
            raise ValueError(f"sealing_keys: the key of {identity} is missing")
        return PublicSealingKey(identity, public, bool(key.get("revoked")))
    raise ValueError("sealing_keys: each key is a dict {'identity', 'public_key', 'revoked'?} (or give a sealing keys file's path)")


def _recipient(key: PublicSealingKey) -> SealingRecipient:
    try:
        return sealing_recipient(key.public_key)
    except (TypeError, AttributeError) as problem:
        raise ValueError(f"sealing_keys: the key of {key.identity}: {problem}") from None


KeysOf = Callable[[str], list[SealingRecipient]]


def read_sealing_keys(keys: Any) -> KeysOf:
    """`sealing_keys`: the path of a sealing keys file, a list of keys (`_public_key`), or a
    function from an identity to its keys, asked each time a message is sealed (a key it stops
    returning is no longer sealed for). Returns the identity → unrevoked recipients lookup."""
    _need()
    if keys is None:
        return lambda identity: []
    if callable(keys):
        def resolve(identity: str) -> list[SealingRecipient]:
            found = [_public_key(key) for key in (keys(identity) or [])]
            return [_recipient(key) for key in found if key.identity == identity and not key.revoked]
        return resolve
    if isinstance(keys, (str, bytes, os.PathLike)):
        listed: Iterable[Any] = load_sealing_keys_file(keys)
    elif isinstance(keys, Iterable):
        listed = keys
    else:
        raise ValueError("sealing_keys must be a sealing keys file's path, a list of keys or a function from an identity to its keys")
    # Parsed once: a list does not change.
    by_identity: dict[str, list[SealingRecipient]] = {}
    for key in (_public_key(key) for key in listed):
        if not key.revoked:
            by_identity.setdefault(key.identity, []).append(_recipient(key))
    return lambda identity: by_identity.get(identity, [])


@dataclass(frozen=True)
class Opening:
    """What opening a received sealed envelope gave: ``ok`` with the ``envelope`` (its payload the
    plaintext, ``seal`` kept), or a ``reason`` (one of SEAL_FAILURES) and ``why``."""

    ok: bool
    envelope: Optional[dict] = None
    reason: Optional[str] = None
    why: Optional[str] = None


class ClientSealing:
    """What this client seals with (the public keys of the others) and opens with (its private keys)."""

    def __init__(self, private_keys: Iterable[Any], keys_of: KeysOf, requests_by_default: bool = False) -> None:
        self._own: list[SealingIdentityKey] = [sealing_identity_key(key) for key in private_keys]
        self._keys_of = keys_of
        #: `seal_requests`: every request to an application action sealed unless told otherwise.
        self.requests_by_default = requests_by_default
        self.sealed = 0
        self.opened = 0
        self.refused = {reason: 0 for reason in SEAL_FAILURES}

    @property
    def kids(self) -> list[str]:
        """The ids of the keys this client opens with."""
        return [key.kid for key in self._own]

    @property
    def stats(self) -> dict:
        return {"sealed": self.sealed, "opened": self.opened, "refused": dict(self.refused)}

    def can_seal_for(self, client_id: str) -> bool:
        """Whether a key is known for the identity of `client_id` (`<identity>~<session>` → identity)."""
        return len(self._keys_of(identity_of_client_id(client_id))) > 0

    def seal(self, envelope: dict, required: Iterable[str], optional: Iterable[str] = ()) -> dict:
        """`envelope` with its payload sealed for every unrevoked key of each identity of `required`
        (client ids or identities), and of those of `optional` that have keys while there is room
        (64 keys, §3.6). `SealingError` naming an identity of `required` with no key or past the 64
        keys, or when no key at all is known; `TypeError` for a payload that is not JSON."""
        recipients: list[SealingRecipient] = []
        kids: set[str] = set()
        seen: list[str] = []

        def add(client_id: str, must_have: bool) -> None:
            identity = identity_of_client_id(client_id)
            if identity in seen:
                return
            seen.append(identity)
            keys = self._keys_of(identity)
            if not keys and must_have:
                raise _no_key(identity)
            for key in keys:
                if key.kid in kids:
                    continue
                # A recipient left out would silently not read it: only optional ones are dropped past the cap.
                if len(recipients) == MAX_SEAL_RECIPIENTS:
                    if must_have:
                        raise SealingError(f"a message is sealed for at most {MAX_SEAL_RECIPIENTS} keys (protocol §3.6): {identity} and "
                                           "the identities before it have more; nothing was sent")
                    return
                kids.add(key.kid)
                recipients.append(key)

        for client_id in required:
            add(client_id, True)
        for client_id in optional:
            add(client_id, False)
        if not recipients:
            raise SealingError("nobody to seal for: no recipient identity is known yet (protocol §3.6)" if not seen else
                               f"no sealing key for {', '.join(seen)}: give their public sealing keys (sealing_keys, a sealing keys file)")
        seal, body = seal_payload(envelope.get("payload"), envelope.get("type"), envelope.get("source"), envelope.get("token"), recipients)
        self.sealed += 1
        return sealed_envelope(envelope, seal, body)

    def open(self, envelope: dict) -> Opening:
        """A received envelope that carries a `seal` member, opened with this client's keys; counted. Never raises."""
        opened = open_payload(str(envelope.get("type")), str(envelope.get("source")), envelope.get("token"), envelope.get(SEAL_MEMBER),
                              envelope.get("payload"), self._own)
        if not opened.ok:
            self.refused[opened.reason] += 1
            return Opening(False, reason=opened.reason, why=opened.why)
        self.opened += 1
        return Opening(True, envelope={**envelope, "payload": opened.payload})

    def open_row(self, row: dict) -> dict:
        """A history row the router recorded sealed (protocol §11.1), opened when this client holds one
        of its keys and the row holds the whole ciphertext (not `truncated`): `data`, `size`, `sha256`
        become what the row of the same payload unsealed holds, `seal` stays, `opened` is set. Any
        other row comes back as it is. Never raises."""
        kind = _ENVELOPE_TYPE_OF_KIND.get(row.get("kind")) if isinstance(row, dict) else None
        if kind is None or row.get("seal") is None or row.get("truncated") or row.get("opened") or not self._own:
            return row
        try:
            ciphertext = base64.b64decode(str(row.get("data", "")), validate=True)
        except ValueError:
            return row
        opened = open_payload(kind, str(row.get("via") or row.get("source")), row.get("token"), row["seal"], ciphertext, self._own)
        if not opened.ok:
            return row
        if opened.seal["form"] == "bytes":
            plain = bytes(opened.payload)
            return {**row, "data": base64.b64encode(plain).decode("ascii"), "size": len(plain),
                    "sha256": hashlib.sha256(plain).hexdigest(), "truncated": False, "opened": True}
        # As the router records a JSON payload (protocol §11.1): its JSON text, with no digest.
        data = json.dumps(opened.payload, ensure_ascii=False, separators=(",", ":"))
        rest = {key: value for key, value in row.items() if key != "sha256"}
        return {**rest, "data": data, "size": len(data.encode("utf-8")), "truncated": False, "opened": True}


#: The envelope type a history row of each kind recorded (protocol §11.1): what its seal is bound to.
_ENVELOPE_TYPE_OF_KIND = {"command": "command", "accepted": "response", "progress": "response", "final": "response",
                          "error": "response", "cancel": "cancel"}


def _no_key(identity: str) -> SealingError:
    return SealingError(f"no sealing key for identity {identity}: add it to the sealing keys file (sealing_keys) or ask its owner "
                        "for one; nothing was sent", details={"identity": identity})


def make_sealing(sealing_key: Any, sealing_keys: Any, seal_requests: bool) -> ClientSealing:
    """The client's sealing from its connect options (without any, one that holds no key): `sealing_key`
    one private key or a list (a rotation: what was sealed for the old key still opens),
    `sealing_keys` the others' public keys (`read_sealing_keys`)."""
    if sealing_key is None and sealing_keys is None and not seal_requests:
        # Holding no key, it opens nothing, but says why a sealed message stays unopened (counted).
        return ClientSealing([], lambda identity: [], False)
    _need()
    if sealing_key is None:
        private: list[Any] = []
    elif isinstance(sealing_key, (list, tuple)):
        private = [read_sealing_private_key(key) for key in sealing_key]
    else:
        private = [read_sealing_private_key(sealing_key)]
    return ClientSealing(private, read_sealing_keys(sealing_keys), bool(seal_requests))
