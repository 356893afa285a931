"""Request tokens (protocol §3.1), as `src/client/tokens.ts` makes them: 96 random bits in
base64url (16 characters), unpredictable, so nobody can claim the next one in the history."""
from __future__ import annotations

import base64
import secrets


def new_token() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(12)).decode("ascii")
