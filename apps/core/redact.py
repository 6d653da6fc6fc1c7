"""Secrets out of text that is kept: log lines, run-log errors, exception reports.

DEXMA sends `dep_token` and `temp_token` in the query string, so every access-log line and
every error that quotes a URL would carry them; partners send `X-API-Key` or HTTP Basic;
platforms sign webhooks. :func:`redact` masks the value after any name that looks secret,
in a query string (`dep_token=…`), a header or dict repr (`'Authorization': 'Basic …'`),
JSON (`"password": "…"`) or prose (`Bearer …`), and keeps the name so the line still says
what was sent.

This module is loaded while logging is configured, before Django's apps: it imports nothing
of the project.
"""

from __future__ import annotations

import re

MASK = "***"

# A name is secret when one of its parts (split at _ - .) is one of these: dep_token,
# X-API-Key, client_secret, X-Hub-Signature-256, passwd; not "design" or "passed".
_NAME_PARTS = (
    r"token|secret|password|passwd|pass|pwd|key|apikey|signature|sig|auth"
    r"|authorization|credentials?|clientsecret|accesstoken|refreshtoken"
)
_NAME = rf"(?:[\w.-]*[_.-])?(?:{_NAME_PARTS})(?:[_.-][\w.-]*)?(?![\w])"

# name=value in a query string, a form body or `key=value` prose; the value runs to the next
# separator. %-encoded names (dep%5Ftoken) are rare enough to leave to the word rules below.
_ASSIGNED = re.compile(rf"(?i)(?<![\w-])({_NAME})=([^&\s\"'\\,;)\]}}]+)")
# "name": "value" or 'name': 'value' (JSON, Python reprs of headers and dicts), and
# `Name: value` header lines; an auth scheme before the value is kept.
_QUOTED = re.compile(
    rf"(?i)([\"']{_NAME}[\"']\s*:\s*[\"'])((?:Basic|Bearer|Token|Digest)\s+)?([^\"']+)"
)
_HEADER = re.compile(
    rf"(?im)^(\s*{_NAME}\s*:\s*)((?:Basic|Bearer|Token|Digest)\s+)?(\S+)"
)
# Credentials after an auth scheme, wherever they are quoted.
_SCHEME = re.compile(r"(?i)\b(Basic|Bearer)\s+([A-Za-z0-9._~+/-]{6,}=*)")


def redact(text: str) -> str:
    """``text`` with every secret-looking value replaced by ``***``."""
    if not text:
        return text
    text = _ASSIGNED.sub(lambda m: f"{m.group(1)}={MASK}", text)
    text = _QUOTED.sub(lambda m: f"{m.group(1)}{m.group(2) or ''}{MASK}", text)
    text = _HEADER.sub(lambda m: f"{m.group(1)}{m.group(2) or ''}{MASK}", text)
    return _SCHEME.sub(lambda m: f"{m.group(1)} {MASK}", text)


def is_secret_name(name: str) -> bool:
    """Whether a parameter, header or field called ``name`` holds a secret."""
    return re.fullmatch(_NAME, name, flags=re.IGNORECASE) is not None
