"""Frame codecs for the two v1 subprotocols.

``octim.v1.json`` carries JSON text frames (for the dependency-free browser
client), ``octim.v1.msgpack`` binary msgpack frames; both carry the same maps.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack

from octim.errors import ClientError, OctimError
from octim.values import Unstorable, loads_json, loads_msgpack

JSON = "octim.v1.json"
MSGPACK = "octim.v1.msgpack"
SUBPROTOCOLS = (MSGPACK, JSON)


class BadFrame(ClientError):
    """A frame could not be decoded, or is not a map with a string ``type``."""

    code = "bad_frame"


class FrameCodec:
    """Encodes and decodes frames for one negotiated subprotocol."""

    __slots__ = ("binary", "subprotocol")

    def __init__(self, subprotocol: str) -> None:
        if subprotocol not in SUBPROTOCOLS:
            raise ValueError(f"unknown subprotocol {subprotocol!r}")
        self.subprotocol = subprotocol
        self.binary = subprotocol == MSGPACK

    def decode(self, data: str | bytes) -> dict[str, Any]:
        """A frame as a dict with a string ``type``.

        Raises :class:`BadFrame` if it cannot be decoded, and
        :class:`~octim.values.Unstorable` (``invalid_body``) if it holds a value
        outside the storable subset (:mod:`octim.values`): every field of every
        frame is checked here, before any actor sees it.
        """
        if self.binary != isinstance(data, bytes):
            kind = "binary" if self.binary else "text"
            raise BadFrame(f"{self.subprotocol} expects {kind} frames")
        try:
            frame = (loads_msgpack(data, where="frame") if isinstance(data, bytes)
                     else loads_json(data, where="frame"))
        except Unstorable:
            raise
        except OctimError as exc:
            raise BadFrame(f"undecodable frame: {exc}") from None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            raise BadFrame("a frame must be a map with a string 'type'")
        return frame

    def encode(self, frame: dict[str, Any]) -> str | bytes:
        """The wire form of a frame."""
        if self.binary:
            return bytes(msgpack.packb(frame, use_bin_type=True))
        return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
