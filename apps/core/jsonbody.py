"""JSON from outside, checked for strings PostgreSQL cannot store.

JSON may carry a lone UTF-16 surrogate (`"\\ud800"`): Python decodes it into a str that
cannot be encoded as UTF-8, so the first query that sends it fails deep inside a service,
after part of the work is done. PostgreSQL text cannot hold NUL either. Every parser facing
outside (the partner API's bodies, Volue's notifications) runs :func:`unstorable_find` on
what it decoded and refuses the request naming the field, before anything is stored.
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")
# A surrogate can only arrive as a \\uD800-\\uDFFF escape: bodies without one skip the walk.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _problem(text: str, *, nul: bool) -> str | None:
    if _SURROGATE.search(text):
        return "holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not Unicode text"
    if nul and "\x00" in text:
        return "holds a NUL character (\\u0000), which cannot be stored"
    return None


def unstorable_find(data: Any, raw: bytes | None = None, *,
                    nul: bool = True) -> tuple[str, str] | None:
    """The first (path, problem) of a string, key or value, that cannot be stored, or None.

    `path` reads like `readings[3].meter`. Given the `raw` body, a body that cannot hold a
    surrogate (no \\uD8xx-\\uDFxx escape) and, with `nul`, no NUL escape is not walked.
    """
    if raw is not None and not _SURROGATE_ESCAPE.search(raw) and (
            not nul or b"\\u0000" not in raw):
        return None
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            problem = _problem(value, nul=nul)
            if problem:
                return path or "the body", problem
        elif isinstance(value, dict):
            children = []
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                problem = _problem(key, nul=nul)
                if problem:
                    shown = child.encode("utf-8", "backslashreplace").decode()
                    return shown, f"(a key) {problem}"
                children.append((child, item))
            stack.extend(reversed(children))  # popped in document order
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item)
                         for index, item in reversed(list(enumerate(value))))
    return None
