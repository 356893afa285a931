"""Sealed payloads (protocol §3.6, §12.5): the layout of the ``seal`` member, the text each sealed
body is bound to and (only when ``cryptography`` imports, ``sealing_available()``) X25519 keys,
sealing a payload for a list of public keys and opening it with a private one. Ports
``src/protocol/sealing.ts`` and the cryptography of ``src/security/sealing.ts``.

A sealed message is a binary message (§3.5) whose body is the ciphertext and whose header
carries, right after ``body``, the member

    "seal":{"alg":"X25519-HKDF-SHA256-A256GCM","form":"json"|"bytes","epk":"<b64 32>","nonce":"<b64 12>","to":[{"kid":"<16 hex>","key":"<b64 48>"},...]}

Per message: a random content key (CEK) and nonce, a fresh ephemeral X25519 pair ``e``; the body
is AES-256-GCM(CEK, nonce, plaintext, AAD); for each recipient key R, Z = X25519(e, R), KEK =
HKDF-SHA256(Z, salt epk ‖ R, info "relais-seal/1 key", 32) and ``key`` = AES-256-GCM(KEK, 12
zero bytes, CEK, aad = kid). No primitive of our own: ``cryptography`` does each step.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence, Union

from .envelope import parse_json
from .framing import is_bytes

#: The one construction of protocol §3.6: X25519 agreement, HKDF-SHA256, AES-256-GCM.
SEAL_ALGORITHM = "X25519-HKDF-SHA256-A256GCM"
#: The header member of a sealed message.
SEAL_MEMBER = "seal"
#: Most recipients one message is sealed for (§3.6): bounds the header and the work of a receiver.
MAX_SEAL_RECIPIENTS = 64
#: HKDF's ``info`` for a recipient's key-encryption key (§3.6).
SEAL_KEY_INFO = b"relais-seal/1 key"
#: What the plaintext is: the payload's JSON text (UTF-8), or the payload's bytes.
SEAL_FORMS: tuple[str, ...] = ("json", "bytes")
#: Why a sealed message was not opened (§3.6).
SEAL_FAILURES: tuple[str, ...] = ("not-for-me", "malformed", "undecryptable")
#: Byte lengths of the members (§3.6).
EPK_BYTES, NONCE_BYTES, WRAPPED_KEY_BYTES, CONTENT_KEY_BYTES, TAG_BYTES = 32, 12, 48, 32, 16

_DOMAIN = "relais-seal/1"
_ZERO_NONCE = bytes(12)
_MEMBER_KEYS = ["alg", "form", "epk", "nonce", "to"]


def _base64_of(size: int) -> re.Pattern[str]:
    """Base64 (standard alphabet, padded) of exactly ``size`` bytes, its last character canonical."""
    full = size // 3 * 4
    rest = size % 3
    tail = "" if rest == 0 else "[A-Za-z0-9+/][AQgw]==" if rest == 1 else "[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]="
    return re.compile(f"[A-Za-z0-9+/]{{{full}}}{tail}")


_EPK = _base64_of(EPK_BYTES)
_NONCE = _base64_of(NONCE_BYTES)
_WRAPPED = _base64_of(WRAPPED_KEY_BYTES)
_KID = re.compile(r"[0-9a-f]{16}")


def seal_aad(type_: str, source: str, token: Optional[str], form: str, epk: str) -> bytes:
    """The additional authenticated data of a sealed body: ``relais-seal/1␀<type>␀<source>␀<token
    or empty>␀<form>␀<epk>``. It binds the body to its kind, sender, request and ephemeral key, so
    that it cannot be pasted into another envelope; ``acceptBy`` and ``destination`` are not bound
    (a command sent again, §4.7, or to another handler keeps its seal)."""
    return "\x00".join((_DOMAIN, type_, source, token or "", form, epk)).encode("utf-8")


def read_seal_member(value: Any) -> Union[dict, str]:
    """The ``seal`` member checked field by field, or why it is not one written as §3.6 says."""
    if not isinstance(value, dict):
        return "field 'seal' must be an object (protocol §3.6)"
    if list(value) != _MEMBER_KEYS:
        return f"field 'seal' must have the fields {', '.join(_MEMBER_KEYS)}, in this order (protocol §3.6)"
    if value["alg"] != SEAL_ALGORITHM:
        return f"field 'seal.alg' must be \"{SEAL_ALGORITHM}\" (protocol §3.6)"
    if value["form"] not in SEAL_FORMS:
        return "field 'seal.form' must be \"json\" or \"bytes\" (protocol §3.6)"
    if not isinstance(value["epk"], str) or not _EPK.fullmatch(value["epk"]):
        return "field 'seal.epk' must be the base64 of 32 bytes (protocol §3.6)"
    if not isinstance(value["nonce"], str) or not _NONCE.fullmatch(value["nonce"]):
        return "field 'seal.nonce' must be the base64 of 12 bytes (protocol §3.6)"
    to = value["to"]
    if not isinstance(to, list) or len(to) == 0:
        return f"field 'seal.to' must be a list of 1 to {MAX_SEAL_RECIPIENTS} recipients (protocol §3.6)"
    if len(to) > MAX_SEAL_RECIPIENTS:
        return f"field 'seal.to' lists {len(to)} recipients, over the limit of {MAX_SEAL_RECIPIENTS} (protocol §3.6)"
    seen: set[str] = set()
    for at, recipient in enumerate(to):
        if not isinstance(recipient, dict) or list(recipient) != ["kid", "key"]:
            return f"field 'seal.to.{at}' must be {{\"kid\", \"key\"}} (protocol §3.6)"
        kid, key = recipient["kid"], recipient["key"]
        if not isinstance(kid, str) or not _KID.fullmatch(kid):
            return f"field 'seal.to.{at}.kid' must be 16 lower-case hex digits (protocol §12.5)"
        if not isinstance(key, str) or not _WRAPPED.fullmatch(key):
            return f"field 'seal.to.{at}.key' must be the base64 of 48 bytes (protocol §3.6)"
        if kid in seen:
            return f"field 'seal.to.{at}.kid': key {kid} is listed twice (protocol §3.6)"
        seen.add(kid)
    return value


def is_sealed(envelope: dict) -> bool:
    """Whether an envelope carries a ``seal`` member (opened or not)."""
    return envelope.get(SEAL_MEMBER) is not None


def sealed_for(seal: Any) -> list[str]:
    """The key ids a seal member names, for a line that says whom a message is for; empty when it is not a list of recipients."""
    to = seal.get("to") if isinstance(seal, dict) else None
    if not isinstance(to, list):
        return []
    return [r["kid"] for r in to if isinstance(r, dict) and isinstance(r.get("kid"), str)][:MAX_SEAL_RECIPIENTS]


def sealed_envelope(envelope: dict, seal: dict, body: bytes) -> dict:
    """The envelope with its payload replaced by the sealed body and the ``seal`` member right
    after it, so that the binary header reads ``..."body":<n>,"seal":{...},...`` and a trailing
    ``acceptBy`` or ``sig`` stays last (§3.5, §4.7, §12.2)."""
    sealed: dict = {}
    for key, value in envelope.items():
        if key == SEAL_MEMBER:
            continue
        if key == "payload":
            sealed["payload"] = body
            sealed[SEAL_MEMBER] = seal
        else:
            sealed[key] = value
    return sealed


def seal_problem(envelope: dict) -> Optional[str]:
    """Why a received envelope's seal cannot even be tried (its member, or its body not bytes), or None."""
    member = read_seal_member(envelope.get(SEAL_MEMBER))
    if isinstance(member, str):
        return member
    body = envelope.get("payload")
    if not is_bytes(body):
        return "a sealed message is a binary message: its body is the ciphertext (protocol §3.6)"
    if len(body) < TAG_BYTES:
        return f"a sealed body is at least its {TAG_BYTES}-byte tag, got {len(body)} bytes (protocol §3.6)"
    return None


# --- Keys and the cryptography: only with `cryptography` (an optional dependency). ---

try:  # pragma: no cover - which branch depends on the machine
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    _CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover
    _CRYPTOGRAPHY = False


def sealing_available() -> bool:
    """Whether sealed payloads can be sealed and opened here (``cryptography`` imports)."""
    return _CRYPTOGRAPHY


def _need_cryptography() -> None:
    if not _CRYPTOGRAPHY:
        raise RuntimeError("sealed payloads (protocol §3.6) need the 'cryptography' package: apt-get install python3-cryptography")


def _raw_public(key: Any) -> bytes:
    public = key.public_key() if isinstance(key, X25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sealing_key_id(key: Any) -> str:
    """A sealing key's id (§12.5): the first 16 hex digits of the SHA-256 of its raw 32-byte public key (private or public key)."""
    _need_cryptography()
    return hashlib.sha256(_raw_public(key)).hexdigest()[:16]


def new_sealing_key() -> Any:
    """A new X25519 private key."""
    _need_cryptography()
    return X25519PrivateKey.generate()


def parse_sealing_public_key(text: str) -> Any:
    """An X25519 public key from PEM (SPKI) or the base64 of its raw 32 bytes; ``TypeError`` saying why not."""
    _need_cryptography()
    trimmed = text.strip()
    if trimmed.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(trimmed.encode())
        except ValueError as cause:
            raise TypeError(f"not a readable PEM public key: {cause}") from cause
        if not isinstance(key, X25519PublicKey):
            raise TypeError(f"an X25519 key is needed, got {_kind(key)}")
        return key
    raw = base64.b64decode(trimmed) if re.fullmatch(r"[A-Za-z0-9+/]{43}=", trimmed) else None
    if raw is None or len(raw) != 32:
        raise TypeError("expected a PEM public key or the base64 of 32 raw X25519 key bytes")
    return X25519PublicKey.from_public_bytes(raw)


def load_sealing_private_key(pem: Union[bytes, str]) -> Any:
    """An X25519 private key from PEM PKCS #8 (§12.5); ``TypeError`` saying why not (never the key)."""
    _need_cryptography()
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as cause:
        raise TypeError(f"not a readable PEM private key: {cause}") from cause
    if not isinstance(key, X25519PrivateKey):
        raise TypeError(f"an X25519 private key is needed, got {_kind(key)}")
    return key


def _kind(key: Any) -> str:
    """How node:crypto names a key's type (``ed25519``, ``x25519``...), for the same messages as the TS library's."""
    name = type(key).__name__.lower()
    for kind in ("ed25519", "x25519", "ed448", "x448", "rsa", "ec", "dsa"):
        if name.startswith(f"_{kind}") or name.startswith(kind):
            return kind
    return name


@dataclass(frozen=True)
class SealingRecipient:
    """A key a message is sealed for: its id, the key, and its raw 32 bytes (the HKDF salt needs them)."""

    kid: str
    public_key: Any
    raw: bytes


def sealing_recipient(public_key: Any) -> SealingRecipient:
    """The recipient entry of a public key (a key object, or PEM / raw base64 text): its id computed, never read."""
    _need_cryptography()
    key = parse_sealing_public_key(public_key) if isinstance(public_key, str) else public_key
    if isinstance(key, X25519PrivateKey):
        key = key.public_key()
    if not isinstance(key, X25519PublicKey):
        raise TypeError(f"an X25519 public key is needed, got {_kind(key)}")
    raw = _raw_public(key)
    return SealingRecipient(hashlib.sha256(raw).hexdigest()[:16], key, raw)


@dataclass(frozen=True)
class SealingIdentityKey:
    """A private key this client opens with, its id and its raw public key (the HKDF salt needs it)."""

    kid: str
    private_key: Any
    public_raw: bytes


def sealing_identity_key(private_key: Any) -> SealingIdentityKey:
    """The opening entry of a private key (a key object, or PEM text)."""
    _need_cryptography()
    key = load_sealing_private_key(private_key) if isinstance(private_key, (str, bytes)) else private_key
    if not isinstance(key, X25519PrivateKey):
        raise TypeError(f"an X25519 private key is needed, got {_kind(key)}")
    raw = _raw_public(key)
    return SealingIdentityKey(hashlib.sha256(raw).hexdigest()[:16], key, raw)


def _key_encryption_key(shared: bytes, epk: bytes, recipient: bytes) -> bytes:
    """HKDF-SHA256(Z, salt = epk ‖ R, info = "relais-seal/1 key") → the 32-byte key-encryption key of one recipient."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=epk + recipient, info=SEAL_KEY_INFO).derive(shared)


def _plaintext_of(payload: Any) -> tuple[str, bytes]:
    """The plaintext of a payload and its form: bytes as they are, anything else as its JSON text. ``TypeError`` for what is not JSON."""
    if is_bytes(payload):
        return "bytes", bytes(payload)
    try:
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as cause:
        raise TypeError(f"the payload to seal is not JSON: {cause}") from cause
    return "json", text.encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def seal_payload(payload: Any, type_: str, source: str, token: Optional[str], recipients: Sequence[SealingRecipient]) -> tuple[dict, bytes]:
    """Seals ``payload`` for ``recipients`` (§3.6): a fresh content key, nonce and ephemeral key per
    call. Returns the seal member and the body (ciphertext ‖ tag). ``ValueError`` for no recipient
    or more than 64, ``TypeError`` for a payload that is not JSON."""
    _need_cryptography()
    if len(recipients) == 0:
        raise ValueError("a sealed message needs at least one recipient key (protocol §3.6)")
    if len(recipients) > MAX_SEAL_RECIPIENTS:
        raise ValueError(f"a message is sealed for at most {MAX_SEAL_RECIPIENTS} keys, got {len(recipients)} (protocol §3.6)")
    form, plaintext = _plaintext_of(payload)
    content_key = os.urandom(CONTENT_KEY_BYTES)
    nonce = os.urandom(NONCE_BYTES)
    ephemeral = X25519PrivateKey.generate()
    epk_raw = _raw_public(ephemeral)
    epk = _b64(epk_raw)
    seen: set[str] = set()
    to = []
    for recipient in recipients:
        if recipient.kid in seen:
            continue
        seen.add(recipient.kid)
        kek = _key_encryption_key(ephemeral.exchange(recipient.public_key), epk_raw, recipient.raw)
        wrapped = AESGCM(kek).encrypt(_ZERO_NONCE, content_key, recipient.kid.encode("utf-8"))
        to.append({"kid": recipient.kid, "key": _b64(wrapped)})
    body = AESGCM(content_key).encrypt(nonce, plaintext, seal_aad(type_, source, token, form, epk))
    return {"alg": SEAL_ALGORITHM, "form": form, "epk": epk, "nonce": _b64(nonce), "to": to}, body


@dataclass(frozen=True)
class Opened:
    """What opening gave: ``ok`` with the ``payload`` (json: parsed; bytes: the bytes) and the ``seal``
    read, or not ``ok`` with a ``reason`` (one of SEAL_FAILURES) and ``why``."""

    ok: bool
    payload: Any = None
    seal: Optional[dict] = None
    reason: Optional[str] = None
    why: Optional[str] = None


def open_payload(type_: str, source: str, token: Optional[str], seal_value: Any, body: Any,
                 keys: Iterable[SealingIdentityKey]) -> Opened:
    """Opens a sealed body with the first of ``keys`` the seal lists (§3.6): the payload, or why not —
    ``malformed`` (a bad seal member, a body that is not bytes, a plaintext that is not its form),
    ``not-for-me`` (no key of ours listed), ``undecryptable`` (a tag fails: tampered, pasted into
    another envelope, or a wrong key). Never raises."""
    seal = read_seal_member(seal_value)
    if isinstance(seal, str):
        return Opened(False, reason="malformed", why=seal)
    if not is_bytes(body):
        return Opened(False, reason="malformed", why="a sealed message is a binary message: its body is the ciphertext (protocol §3.6)")
    own = list(keys)
    by_kid = {key.kid: key for key in own}
    mine = next(((recipient, by_kid[recipient["kid"]]) for recipient in seal["to"] if recipient["kid"] in by_kid), None)
    if mine is None:
        listed = ", ".join(recipient["kid"] for recipient in seal["to"])
        return Opened(False, reason="not-for-me", why=f"sealed for {listed}, this client holds {', '.join(k.kid for k in own) or 'no sealing key'}")
    if not _CRYPTOGRAPHY:
        return Opened(False, reason="undecryptable", why="this Python has no 'cryptography' package to open it")
    recipient, key = mine
    epk_raw = base64.b64decode(seal["epk"])
    try:
        shared = key.private_key.exchange(X25519PublicKey.from_public_bytes(epk_raw))
    except ValueError as error:
        # An all-zero or low-order ephemeral key makes X25519 fail: a forged seal.
        return Opened(False, reason="undecryptable", why=f"the ephemeral key does not agree: {error}")
    try:
        content_key = AESGCM(_key_encryption_key(shared, epk_raw, key.public_raw)).decrypt(
            _ZERO_NONCE, base64.b64decode(recipient["key"]), recipient["kid"].encode("utf-8"))
    except InvalidTag:
        return Opened(False, reason="undecryptable", why=f"the content key wrapped for {recipient['kid']} does not open")
    if len(content_key) != CONTENT_KEY_BYTES:
        return Opened(False, reason="undecryptable", why=f"the content key wrapped for {recipient['kid']} does not open")
    try:
        plaintext = AESGCM(content_key).decrypt(base64.b64decode(seal["nonce"]), bytes(body),
                                                seal_aad(type_, source, token, seal["form"], seal["epk"]))
    except (InvalidTag, ValueError):
        return Opened(False, reason="undecryptable", why="the body does not open: tampered, or sealed for another envelope")
    if seal["form"] == "bytes":
        return Opened(True, payload=plaintext, seal=seal)
    try:
        return Opened(True, payload=parse_json(plaintext.decode("utf-8")), seal=seal)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        return Opened(False, reason="malformed", why=f"form \"json\", but the plaintext is not JSON text: {error}")
