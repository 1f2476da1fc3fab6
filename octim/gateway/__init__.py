"""The WebSocket gateway: the real-time edge at ``/ws`` (protocol v1)."""

from octim.gateway.server import Gateway

__all__ = ["Gateway"]
