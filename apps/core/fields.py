"""Model fields that keep secrets encrypted at rest (Fernet, key from the environment)."""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

# Fernet tokens are base64 of a version byte 0x80, so they always start like this.
_TOKEN_PREFIX = "gAAAAA"  # noqa: S105 (a format marker, not a secret)


@cache
def _fernet(keys: str) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.strip()) for k in keys.split(",") if k.strip()])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "SECRETS_ENCRYPTION_KEY must be one or more comma-separated Fernet keys "
            "(generate one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())')"
        ) from exc


def encrypt(plaintext: str) -> str:
    return _fernet(settings.SECRETS_ENCRYPTION_KEY).encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet(settings.SECRETS_ENCRYPTION_KEY).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "a stored secret cannot be decrypted with SECRETS_ENCRYPTION_KEY; was the key "
            "replaced instead of rotated (new key first, old key kept after a comma)?"
        ) from exc


def rotate(token: str) -> str:
    """Re-encrypt a stored token under the first (newest) key."""
    return _fernet(settings.SECRETS_ENCRYPTION_KEY).rotate(token.encode()).decode()


class EncryptedTextField(models.TextField):
    """Text stored as a Fernet token; reads give back the plaintext.

    Tokens are non-deterministic, so the column cannot be filtered or indexed by value.
    """

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(str(value))

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        if not value.startswith(_TOKEN_PREFIX):
            raise ImproperlyConfigured("an encrypted column holds a value that is not a token")
        return decrypt(value)
