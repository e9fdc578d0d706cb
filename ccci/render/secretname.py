"""Which names hold secrets: the one decision :mod:`ccci.render.redact` masks by.

Kept apart from the masking so that a policy's templates, which every run renders, ask it
without importing the masks, the unit-file patterns and the scrubber.
"""

from __future__ import annotations

import re

# A name is secret when one of its words is one of these (``db_password``, ``apiKey``,
# ``REGISTRY-TOKEN``) or it contains one of the unmistakable ones (``dbpassword``).
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "passphrase",
        "token",
        "tokens",
        "secret",
        "secrets",
        "key",
        "keys",
        "apikey",
        "credential",
        "credentials",
        "creds",
        "auth",
        "private",
        "privkey",
        "cookie",
        "session",
        "signature",
        "salt",
        "dsn",
    }
)
_SECRET_PARTS = ("password", "passwd", "secret", "token", "credential", "apikey", "privatekey")
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def is_secret_name(name: object) -> bool:
    """Whether a variable, key or environment name looks like it holds a secret."""
    text = str(name)
    if any(part in text.lower() for part in _SECRET_PARTS):
        return True
    return any(word.lower() in _SECRET_WORDS for word in _WORD.findall(text))
