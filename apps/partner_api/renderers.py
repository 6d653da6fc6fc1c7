"""DRF's JSON renderer, passing through a page whose records PostgreSQL already wrote.

The envelope (`next`, `previous`, `next_cursor`) is rendered by DRF itself around the
records' text, so a pre-rendered page has the bytes DRF gives for the same data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from rest_framework.renderers import JSONRenderer

_RESULTS = b'{"results":['


@dataclass(frozen=True, slots=True)
class PreRendered:
    body: bytes


def page_rendered(envelope: dict, records: str) -> PreRendered:
    """`envelope` with empty `results` first, `records` the array's items as JSON text."""
    rendered = JSONRenderer().render(envelope)
    if not rendered.startswith(_RESULTS + b"]"):
        raise ValueError("the envelope must start with an empty 'results'")
    # DRF escapes these two (valid JSON, but not valid JavaScript) wherever they occur.
    records = records.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return PreRendered(_RESULTS + records.encode() + rendered[len(_RESULTS):])


class PartnerJSONRenderer(JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, PreRendered):
            if self.get_indent(accepted_media_type, renderer_context or {}) is None:
                return data.body
            data = json.loads(data.body)  # `Accept: application/json; indent=2`
        return super().render(data, accepted_media_type, renderer_context)
