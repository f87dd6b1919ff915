"""A user's ``json`` module (``json=`` of the Flask facade and of ``AsyncServer``) on
both sides of the wire.

The native layer parses and writes JSON itself; a custom module sees the same text it
would see in python-socketio, where it encodes and decodes whole packets:

- encoding: ``module.dumps(data)``, read back as plain JSON values for the native layer
  (so datetimes, UUIDs, ... become what the module makes of them);
- decoding: the handler's arguments written out as a JSON array and decoded with
  ``module.loads`` (object hooks, ``parse_float=Decimal``, ...).

Binary data (``bytes``) stays binary both ways: it travels as an attachment, so the
module sees python-socketio's placeholder ``{"_placeholder": true, "num": N}`` in its
place, and the bytes are put back after it. Numbers the module decodes come from the
text the native parser writes back (the shortest form of each float: ``1.10`` on the
wire reaches ``loads`` as ``1.1``).
"""

from __future__ import annotations

import json as _stdlib_json
from typing import Any

_BINARY = (bytes, bytearray, memoryview)


def _strip(value: Any, blobs: list[Any]) -> Any:
    """``value`` with every binary replaced by a numbered placeholder (kept in ``blobs``)."""
    if isinstance(value, _BINARY):
        blobs.append(value)
        return {"_placeholder": True, "num": len(blobs) - 1}
    if isinstance(value, dict):
        return {k: _strip(v, blobs) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strip(v, blobs) for v in value]
    return value


def _restore(value: Any, blobs: list[Any]) -> Any:
    """Put the binaries ``_strip`` took out back in place of their placeholders."""
    if isinstance(value, dict):
        num = value.get("num")
        if (
            len(value) == 2
            and value.get("_placeholder") is True
            and type(num) is int
            and 0 <= num < len(blobs)
        ):
            return blobs[num]
        return {k: _restore(v, blobs) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v, blobs) for v in value]
    return value


def encode(module: Any, data: Any) -> Any:
    """``data`` as ``module.dumps`` encodes it, as plain JSON values (a tuple of several
    arguments stays a tuple; binaries stay binary)."""
    blobs: list[Any] = []
    several = isinstance(data, tuple)
    stripped = _strip(list(data) if several else data, blobs)
    text = module.dumps(stripped)
    if isinstance(text, bytes):  # orjson and friends
        text = text.decode("utf-8")
    out = _restore(_stdlib_json.loads(text), blobs)
    if several:
        if not isinstance(out, list):
            raise TypeError(f"json.dumps of several arguments made {type(out).__name__}, not an array")
        return tuple(out)
    return out


def decode(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """A handler's arguments as ``module.loads`` decodes them."""
    blobs: list[Any] = []
    text = _stdlib_json.dumps(_strip(list(args), blobs), separators=(",", ":"))
    out = module.loads(text)
    if not isinstance(out, list) or len(out) != len(args):
        raise TypeError(
            f"json.loads of the arguments {text[:80]!r} returned {type(out).__name__}, "
            "not the list of arguments"
        )
    return tuple(_restore(v, blobs) for v in out)
