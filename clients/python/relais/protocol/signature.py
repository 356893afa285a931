"""Signed envelopes (protocol §12): the layout of the ``sig`` member, the text an Ed25519
signature covers, and (only when ``cryptography`` imports, ``signing_available()``) keys,
signing and the checks of a verifying receiver (§12.4). Ports ``src/protocol/signature.ts``
and the key handling of ``src/security/ed25519.ts``.

A signed message is the envelope's wire text with one member appended, last, written exactly so:

    ,"sig":{"kid":"<16 hex>","boot":"<16 hex>","seq":<integer>,"ts":<integer>,"sig":"<88 base64>"}}

so that a receiver recovers the signed text by cutting that tail off, with no canonical JSON.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Union

from .framing import HEADER_END, frame, split_frame
from .replay_window import REPLAYED, ReplayWindows

_NUL = "\x00"
_DOMAIN = "relais-sig/1"
_TAIL_START = ',"sig":{"kid":"'
_TAIL = re.compile(r',"sig":\{"kid":"([0-9a-f]{16})","boot":"([0-9a-f]{16})","seq":(\d{1,16}),"ts":(\d{1,16}),"sig":"([A-Za-z0-9+/]{86}==)"\}\}')

#: Hex digits of a key id: the first ones of the SHA-256 of the raw 32-byte public key (§12.1).
KEY_ID_HEX_DIGITS = 16
#: Defaults of a verifying receiver (§12.3).
DEFAULT_MAX_SKEW_MS = 30_000
DEFAULT_MAX_SENDERS = 10_000
REFUSAL_REASONS: tuple[str, ...] = ("unsigned", "malformed", "unknown-key", "revoked-key", "wrong-identity", "forged", "stale", "replayed")

_MAX_SAFE_INTEGER = 2**53 - 1


@dataclass(frozen=True)
class SignatureHeader:
    """What the ``sig`` member says besides the signature: key id, boot (64 random bits, hex), seq, ts (epoch ms)."""

    kid: str
    boot: str
    seq: int
    ts: int


@dataclass(frozen=True)
class ReadSignature:
    """A ``sig`` member read: its header, the base64 signature, and ``unsigned``, the text that was signed."""

    kid: str
    boot: str
    seq: int
    ts: int
    sig: str
    unsigned: str


def signed_text(topic: str, header: Any, unsigned: str) -> str:
    """The text an Ed25519 signature covers, to be signed as its UTF-8 bytes (§12.2)."""
    return _NUL.join((_DOMAIN, topic, header.kid, header.boot, str(header.seq), str(header.ts), unsigned))


def signed_bytes(topic: str, header: Any, unsigned: str, body: Optional[bytes] = None) -> bytes:
    """The bytes an Ed25519 signature covers: ``signed_text`` in UTF-8 and, for a binary message,
    one NUL and its body (§12.2, §3.5); ``unsigned`` is then the header without the sig member."""
    text = signed_text(topic, header, unsigned).encode("utf-8")
    return text if body is None else text + b"\x00" + body


def is_signable(body: str) -> bool:
    """Whether ``body`` is a JSON object text with at least one member, the only kind of text that is signed."""
    return len(body) > 2 and body[0] == "{" and body[-1] == "}"


def append_signature(body: str, header: SignatureHeader, signature: str) -> str:
    """``body`` (``is_signable``) with the ``sig`` member appended; ``signature`` is the base64 Ed25519 signature of ``signed_text``."""
    return f'{body[:-1]}{_TAIL_START}{header.kid}","boot":"{header.boot}","seq":{header.seq},"ts":{header.ts},"sig":"{signature}"}}}}'


def read_signature(text: str) -> Optional[ReadSignature]:
    """The ``sig`` member of a message's wire text, or None when its tail is not one written as §12.2 says."""
    at = text.rfind(_TAIL_START)
    if at < 0:
        return None
    match = _TAIL.fullmatch(text, at)
    if not match:
        return None
    seq, ts = int(match.group(3)), int(match.group(4))
    if seq > _MAX_SAFE_INTEGER or ts > _MAX_SAFE_INTEGER:
        return None
    return ReadSignature(match.group(1), match.group(2), seq, ts, match.group(5), f"{text[:at]}}}")


def new_boot() -> str:
    """64 random bits in hex, drawn when a signer starts (§12.3)."""
    return secrets.token_hex(8)


# --- Keys and Ed25519: only with `cryptography` (an optional dependency). ---

try:  # pragma: no cover - which branch depends on the machine
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    _CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover
    _CRYPTOGRAPHY = False


def signing_available() -> bool:
    """Whether Ed25519 signing and verifying can be used here (``cryptography`` imports)."""
    return _CRYPTOGRAPHY


def _need_cryptography() -> None:
    if not _CRYPTOGRAPHY:
        raise RuntimeError("signed envelopes (protocol §12) need the 'cryptography' package: apt-get install python3-cryptography")


def _raw_public(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(key: Any) -> str:
    """A key's id (§12.1): the first 16 hex digits of the SHA-256 of the raw 32-byte public key (private or public key)."""
    _need_cryptography()
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return hashlib.sha256(_raw_public(public)).hexdigest()[:KEY_ID_HEX_DIGITS]


def load_private_key(pem: bytes | str, password: Optional[bytes] = None) -> Any:
    """An Ed25519 private key from PEM PKCS #8 (§12.1); ``TypeError`` saying why not."""
    _need_cryptography()
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError) as cause:
        raise TypeError(f"not a readable PEM private key: {cause}") from cause
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError("an Ed25519 key is needed")
    return key


def parse_public_key(text: str) -> Any:
    """A public key from PEM (SPKI) or from the base64 of its raw 32 bytes; ``TypeError`` saying why not."""
    _need_cryptography()
    trimmed = text.strip()
    if trimmed.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(trimmed.encode())
        except ValueError as cause:
            raise TypeError(f"not a readable PEM public key: {cause}") from cause
        if not isinstance(key, Ed25519PublicKey):
            raise TypeError("an Ed25519 key is needed")
        return key
    raw = None
    if re.fullmatch(r"[A-Za-z0-9+/]{43}=", trimmed):
        try:
            raw = base64.b64decode(trimmed, validate=True)
        except binascii.Error:
            raw = None
    if raw is None or len(raw) != 32:
        raise TypeError("expected a PEM public key or the base64 of 32 raw Ed25519 key bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def sign_body(topic: str, body: str, header: SignatureHeader, private_key: Any, binary_body: Optional[bytes] = None) -> str:
    """``body`` with the ``sig`` member appended, signed for ``topic`` with ``private_key`` (§12.2);
    for a binary message ``body`` is its header text and ``binary_body`` its body, signed too (§3.5)."""
    _need_cryptography()
    signature = private_key.sign(signed_bytes(topic, header, body, binary_body))
    return append_signature(body, header, base64.b64encode(signature).decode("ascii"))


def signature_matches(topic: str, signature: ReadSignature, public_key: Any, binary_body: Optional[bytes] = None) -> bool:
    """Whether ``signature`` was made by ``public_key`` over this message for ``topic`` (and, for a
    binary message, over its body, §12.2). Never raises."""
    if not _CRYPTOGRAPHY:
        return False
    try:
        public_key.verify(base64.b64decode(signature.sig), signed_bytes(topic, signature, signature.unsigned, binary_body))
        return True
    except (InvalidSignature, ValueError, binascii.Error, UnicodeEncodeError):
        return False


class Signer:
    """Signs what a client writes (§12.2-§12.3): one ``boot`` per start, ``seq`` 1, 2, 3... across both lanes."""

    def __init__(self, private_key: Any) -> None:
        _need_cryptography()
        self._key = private_key
        self.kid = key_id_of(private_key)
        self.boot = new_boot()
        self._seq = 0

    def sign(self, topic: str, body: Union[str, bytes], now: int) -> Union[str, bytes]:
        """``body`` signed for ``topic`` at ``now`` (epoch ms): a binary message's ``sig`` goes last in
        its header and covers its body too (§12.2, §3.5); a text that is not a JSON object, or
        raw bytes, are sent as they are."""
        if not isinstance(body, str):
            framed = split_frame(body)
            if framed is None or not is_signable(framed.header_text):
                return body
            return frame(self._sign_text(topic, framed.header_text, framed.body, now), framed.body)
        return self._sign_text(topic, body, None, now) if is_signable(body) else body

    def _sign_text(self, topic: str, text: str, binary_body: Optional[bytes], now: int) -> str:
        self._seq += 1
        return sign_body(topic, text, SignatureHeader(self.kid, self.boot, self._seq, int(now)), self._key, binary_body)


@dataclass(frozen=True)
class TrustedKey:
    """A verifier's entry for one key (§12.1): the identity it signs for, the key, whether revoked."""

    identity: str
    public_key: Any
    revoked: bool = False


class Verifier:
    """The checks of a verifying receiver (§12.4), in the order of its table: the first failure decides."""

    def __init__(self, keys: Mapping[str, TrustedKey], require: bool = True, max_skew_ms: float = DEFAULT_MAX_SKEW_MS,
                 max_senders: int = DEFAULT_MAX_SENDERS) -> None:
        """``keys`` by key id; ``require``: an unsigned message is refused (the default)."""
        self._keys = keys
        self.require = require
        self.max_skew_ms = max_skew_ms
        self.windows = ReplayWindows(max_senders, max_skew_ms)

    def refusal(self, topic: str, wire: Union[str, bytes], envelope: Optional[Mapping[str, Any]], now: float, fresh_only: bool = True) -> Optional[str]:
        """Why the message (its ``wire`` bytes or text, its decoded ``envelope`` or None when
        invalid) is refused, or None when it passes. ``fresh_only`` False (a presence, a retained
        message): signature and identity only, not ``stale`` nor ``replayed`` (§12.4)."""
        if envelope is None or "sig" not in envelope:
            return "unsigned" if self.require else None
        # A binary message's signature is in its header and covers its body (§12.2, §3.5).
        framed = split_frame(wire) if isinstance(wire, (bytes, bytearray, memoryview)) and HEADER_END in wire else None
        if framed is not None:
            text, binary_body = framed.header_text, framed.body
        else:
            text, binary_body = (wire if isinstance(wire, str) else bytes(wire).decode("utf-8", "replace")), None
        signature = read_signature(text)
        if signature is None:
            return "malformed"
        key = self._keys.get(signature.kid)
        if key is None:
            return "unknown-key"
        if key.revoked:
            return "revoked-key"
        if key.identity != envelope.get("source"):
            return "wrong-identity"
        if not signature_matches(topic, signature, key.public_key, binary_body):
            return "forged"
        if not fresh_only:
            return None
        if abs(now - signature.ts) > self.max_skew_ms:
            return "stale"
        # Only a message whose signature holds moves the window.
        if self.windows.check(f"{signature.kid} {signature.boot}", signature.seq, signature.ts, now) == REPLAYED:
            return "replayed"
        return None
