"""Request tokens (protocol §3.1), as `src/client/tokens.ts` makes them: 96 random bits in
base64url (16 characters), unpredictable, so nobody can claim the next one in the history."""
from __future__ import annotations

import base64
import secrets


def new_token() -> str:
    """Never one beginning with ``-``, which a command line takes for an option (``relais kill
    <token>``): drawn again instead (1 in 64), as the TypeScript library does."""
    while True:
        token = base64.urlsafe_b64encode(secrets.token_bytes(12)).decode("ascii")
        if not token.startswith("-"):
            return token
