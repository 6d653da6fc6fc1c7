"""Form helpers shared by the integrations' admin forms."""

from django import forms
from django.db import models


def https_url_formfield(field: models.Field, **kwargs) -> forms.Field | None:
    """URLs typed without a scheme are taken as https (Django 6's default, chosen now)."""
    if isinstance(field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return field.formfield(**kwargs)
