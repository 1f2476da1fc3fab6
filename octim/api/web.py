"""The bundled web client: plain files under ``octim/web`` served as they are.

``/agent`` (workbench), ``/chat`` (buyer widget), ``/monitor`` (live monitor),
``/widget.js`` (the script tag a storefront embeds) and ``/static/…``. Pages
ask ``/api/client-config`` where the gateway is.
"""

# No ``from __future__ import annotations``: FastAPI evaluates these annotations.
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from octim._version import __version__

if TYPE_CHECKING:
    from fastapi import FastAPI

    from octim.engine import Engine

WEB = Path(__file__).resolve().parent.parent / "web"
PAGES = {"/agent": "agent.html", "/chat": "chat.html", "/monitor": "monitor.html"}
# The pages load only their own scripts and styles; images come from uploads
# (blob: URLs) or product pictures the platform links (https:).
CSP = ("default-src 'self'; img-src 'self' blob: data: https: http:; media-src 'self' blob:; "
       "connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'; ")
# Storefronts frame the buyer chat (widget.js); staff pages are never framed (clickjacking).
FRAMING = {"/chat": "frame-ancestors *", "/agent": "frame-ancestors 'none'",
           "/monitor": "frame-ancestors 'none'"}


def mount(app: "FastAPI", engine: "Engine") -> None:
    """Add the web client's routes and static files to ``app``."""
    api = APIRouter(tags=["web client"])

    def page(name: str, framing: str) -> Any:
        async def serve() -> FileResponse:
            return FileResponse(WEB / name, media_type="text/html", headers={
                "Content-Security-Policy": CSP + framing, "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff"})
        return serve

    for path, name in PAGES.items():
        api.add_api_route(path, page(name, FRAMING[path]), methods=["GET"],
                          include_in_schema=False)

    @api.get("/widget.js", include_in_schema=False)
    async def widget() -> FileResponse:
        return FileResponse(WEB / "widget.js", media_type="text/javascript",
                            headers={"Cache-Control": "no-cache"})

    @api.get("/api/client-config")
    async def client_config(request: Request) -> Any:
        """Where the browser finds the gateway (``public_ws_url`` if set, else this
        page's host name on the gateway's port)."""
        url = engine.settings.public_ws_url
        if not url:
            bound = engine.ws_bound
            port = bound.port if bound else engine.settings.ws.port
            host = request.url.hostname or "127.0.0.1"
            url = f"ws://{host}:{port}/ws"
        return {"ws_url": url, "version": __version__}

    app.include_router(api)
    app.mount("/static", StaticFiles(directory=WEB), name="static")
