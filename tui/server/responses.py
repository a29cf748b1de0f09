"""JSON answers that are always valid UTF-8: ASCII JSON, so text that is not (a file name
with undecodable bytes, kept as a lone surrogate) travels as an escape, never as an error."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse as StarletteJSON


class JSONResponse(StarletteJSON):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")
