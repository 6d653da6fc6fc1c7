"""JSON request bodies, parsed from bytes in one go, with NUL characters kept out.

PostgreSQL text cannot hold U+0000: a NUL inside a pushed device id would fail the
quarantine insert for the whole batch. The escape is kept as visible text instead. A lone
UTF-16 surrogate cannot even be encoded to send: the request is refused naming the field.
"""

import json

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from apps.core.jsonbody import unstorable_find
from apps.partner_api.exceptions import ApiError


class PartnerJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        if b"\\u0000" in raw:
            raw = raw.replace(b"\\u0000", b"\\\\u0000")
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ParseError(f"the body is not valid JSON: {exc}") from None
        except RecursionError:
            raise ParseError("the body is nested too deeply to be a request; "
                             "send flat records") from None

        found = unstorable_find(data, raw, nul=False)
        if found:
            path, problem = found
            raise ApiError(f"{path} {problem}; send it as valid UTF-8 text",
                           code="invalid_text", fields={path: [problem]})
        return data
