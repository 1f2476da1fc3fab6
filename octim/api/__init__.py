"""The HTTP API: FastAPI served by Hypercorn's trio worker in the engine's trio run."""

from octim.api.app import create_app
from octim.api.serve import serve_http

__all__ = ["create_app", "serve_http"]
