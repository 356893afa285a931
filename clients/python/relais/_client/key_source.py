"""Keys as the options give them (protocol §12, §3.6), one reader for both kinds, as
`src/security/keys-file.ts` is in TS: a private key (a `cryptography` key object, PEM text in
PKCS #8, or the path of the PEM file `relais identity keygen`, or `keygen --seal`, writes), and
a public keys file (`{"version": 1, "keys": {"<kid>": {"identity", "publicKey", "createdAt",
"revoked"?}}}`, each key id checked against its key). Errors say why, never the key.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Callable, NamedTuple, Union

from ..protocol.topics import check_client_id

KeySource = Union[str, bytes, os.PathLike, Any]


def _looks_like_pem(value: Union[str, bytes]) -> bool:
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    return text.lstrip().startswith("-----BEGIN")


def read_key_source(key: KeySource, option: str, load_pem: Callable[[Union[str, bytes]], Any],
                    from_object: Callable[[Any], Any]) -> Any:
    """The key `key` holds: PEM text and files through `load_pem` (a TypeError there says why),
    anything else through `from_object` (which raises ValueError). ValueError naming `option`."""
    if isinstance(key, (str, bytes)) and _looks_like_pem(key):
        try:
            return load_pem(key)
        except TypeError as problem:
            raise ValueError(f"{option}: {problem}") from None
    if isinstance(key, (str, bytes, os.PathLike)):
        path = os.fsdecode(key)
        try:
            with open(path, "rb") as file:
                pem = file.read()
        except OSError as problem:
            raise ValueError(f"{option}: cannot read {path}: {problem.strerror or problem}") from None
        try:
            return load_pem(pem)
        except TypeError as problem:
            raise ValueError(f"{option}: {path}: {problem}") from None
    return from_object(key)


class FileKey(NamedTuple):
    """One entry of a public keys file: whose key, the key, and whether it was revoked."""

    identity: str
    public_key: Any
    revoked: bool


def read_keys_file(path: Union[str, os.PathLike], parse_public: Callable[[str], Any], key_id_of: Callable[[Any], str],
                   missing_is_empty: bool = False) -> list[FileKey]:
    """The entries of the public keys file at `path`, checked as the TS library checks them;
    ValueError naming the file and the field. A missing file holds no key when `missing_is_empty`."""
    name = os.fsdecode(path)
    try:
        with open(name, encoding="utf-8") as file:
            data = json.load(file)
    except FileNotFoundError:
        if missing_is_empty:
            return []
        raise ValueError(f"{name}: cannot read it: no such file") from None
    except OSError as problem:
        raise ValueError(f"{name}: cannot read it: {problem.strerror or problem}") from None
    except ValueError as problem:
        raise ValueError(f"{name}: not valid JSON: {problem}") from None
    if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("keys"), dict) or set(data) != {"version", "keys"}:
        raise ValueError(f"{name}: field '(top level)': expected {{\"version\": 1, \"keys\": {{...}}}}")
    keys: list[FileKey] = []
    for kid, entry in data["keys"].items():
        if not re.fullmatch(r"[0-9a-f]{16}", kid):
            raise ValueError(f"{name}: field 'keys.{kid}': a key id is 16 lower-case hex digits")
        if not isinstance(entry, dict) or set(entry) - {"identity", "publicKey", "createdAt", "revoked"}:
            raise ValueError(f"{name}: field 'keys.{kid}': expected {{\"identity\", \"publicKey\", \"createdAt\", \"revoked\"?}}")
        if not isinstance(entry.get("identity"), str) or check_client_id(entry["identity"]):
            raise ValueError(f"{name}: field 'keys.{kid}.identity': must be a client id (protocol §2.1)")
        if not isinstance(entry.get("publicKey"), str) or not entry["publicKey"]:
            raise ValueError(f"{name}: field 'keys.{kid}.publicKey': expected a string")
        if not isinstance(entry.get("createdAt"), str):
            raise ValueError(f"{name}: field 'keys.{kid}.createdAt': expected a string")
        if "revoked" in entry and not isinstance(entry["revoked"], str):
            raise ValueError(f"{name}: field 'keys.{kid}.revoked': expected a string")
        try:
            public = parse_public(entry["publicKey"])
        except TypeError as problem:
            raise ValueError(f"{name}: field 'keys.{kid}.publicKey': {problem}") from None
        actual = key_id_of(public)
        if actual != kid:
            raise ValueError(f"{name}: field 'keys.{kid}': this key's id is {actual}, not {kid}")
        keys.append(FileKey(entry["identity"], public, bool(entry.get("revoked"))))
    return keys
