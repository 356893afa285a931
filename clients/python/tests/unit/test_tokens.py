"""Request tokens (protocol §3.1), as the TypeScript library makes them."""
import re
import unittest

from relais._client.tokens import new_token


class TokensTest(unittest.TestCase):
    def test_a_token_is_16_base64url_characters_none_beginning_with_a_dash(self) -> None:
        # 1 in 64 random ones would begin with "-", which a command line takes for an option.
        tokens = [new_token() for _ in range(20_000)]
        for token in tokens:
            self.assertRegex(token, re.compile(r"^[A-Za-z0-9_-]{16}$"))
        self.assertFalse([token for token in tokens if token.startswith("-")])
        self.assertEqual(len({token[0] for token in tokens}), 63, "every other character still begins some")
        self.assertEqual(len(set(tokens)), len(tokens))
