"""A private key as the options give it (protocol §12, §3.6): a `cryptography` key object, PEM
text (PKCS #8), or the path of the PEM file `relais identity keygen` (or `keygen --seal`)
writes. One reader for the signing and the sealing keys; errors say why, never the key.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Union

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
