"""Secrets are encrypted at rest: neither a query nor a dump shows them in clear."""

import os
import shutil
import subprocess

import pytest
from django.db import connection

from tests.testapp.models import Vault

SECRET = "s3cr3t-platform-token-4711"


@pytest.mark.django_db
def test_encrypted_field_round_trips_through_the_database():
    Vault.objects.create(label="dexma", secret=SECRET)
    assert Vault.objects.get(label="dexma").secret == SECRET


@pytest.mark.django_db
def test_encrypted_field_stores_no_plaintext_in_the_column():
    Vault.objects.create(label="dexma", secret=SECRET)
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM testapp_vault")
        (stored,) = cursor.fetchone()
    assert SECRET not in stored
    assert stored.startswith("gAAAAA")


@pytest.mark.django_db
def test_same_secret_encrypts_differently_each_time():
    Vault.objects.create(label="a", secret=SECRET)
    Vault.objects.create(label="b", secret=SECRET)
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM testapp_vault ORDER BY label")
        first, second = (row[0] for row in cursor.fetchall())
    assert first != second


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump not installed")
def test_database_dump_contains_no_secret_in_clear():
    Vault.objects.create(label="dexma", secret=SECRET)
    params = connection.get_connection_params()
    dump = subprocess.run(
        ["pg_dump", "--data-only", "--table=testapp_vault", "-h", params.get("host", ""),
         "-p", str(params.get("port", 5432)), "-U", params.get("user", ""),
         params["dbname"]],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PGPASSWORD": params.get("password") or ""},
    )
    assert "dexma" in dump.stdout  # the row is in the dump…
    assert SECRET not in dump.stdout  # …but not its secret


def test_rotated_key_still_decrypts_old_tokens(settings):
    from cryptography.fernet import Fernet

    from apps.core.fields import decrypt, encrypt, rotate

    old_key = settings.SECRETS_ENCRYPTION_KEY
    token = encrypt(SECRET)
    settings.SECRETS_ENCRYPTION_KEY = f"{Fernet.generate_key().decode()},{old_key}"
    assert decrypt(token) == SECRET
    rotated = rotate(token)
    settings.SECRETS_ENCRYPTION_KEY = settings.SECRETS_ENCRYPTION_KEY.split(",")[0]
    assert decrypt(rotated) == SECRET
