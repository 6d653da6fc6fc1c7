"""A model used only by the tests, to exercise shared fields on a real table."""

from django.db import models

from apps.core.fields import EncryptedTextField


class Vault(models.Model):
    label = models.CharField(max_length=50)
    secret = EncryptedTextField(blank=True)

    def __str__(self) -> str:
        return self.label
