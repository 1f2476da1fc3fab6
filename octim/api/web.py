"""The bundled web client: plain files under ``octim/web`` served as they are.

``/agent`` (workbench), ``/chat`` (buyer widget), ``/monitor`` (live monitor),
``/reports``, ``/campaigns``, ``/kb``, ``/admin`` (the admin console; shop and
platform admins),
``/widget.js`` (the script tag a storefront embeds) and ``/static/…``. Pages
ask ``/api/client-config`` where the gateway is.
"""

# No ``from __future__ import annotations``: FastAPI evaluates these annotations.
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from octim._version import __version__
from octim.config import host_list

if TYPE_CHECKING:
    from fastapi import FastAPI

    from octim.engine import Engine

WEB = Path(__file__).resolve().parent.parent / "web"
PAGES = {"/agent": "agent.html", "/chat": "chat.html", "/monitor": "monitor.html",
         "/reports": "reports.html", "/campaigns": "campaigns.html", "/kb": "kb.html",
         "/admin": "admin.html"}
# The pages load only their own scripts and styles; images come from uploads
# (blob: URLs) or the platform's image hosts (setting ``image_hosts``), never
# from any URL a buyer chooses.
CSP = ("default-src 'self'; img-src 'self' blob: data:{hosts}; media-src 'self' blob:; "
       "connect-src 'self' {ws}; style-src 'self'; script-src 'self'; ")
# Storefronts frame the buyer chat (widget.js); staff pages are never framed (clickjacking).
FRAMING = {"/chat": "frame-ancestors *", "/agent": "frame-ancestors 'none'",
           "/monitor": "frame-ancestors 'none'", "/reports": "frame-ancestors 'none'",
           "/campaigns": "frame-ancestors 'none'", "/kb": "frame-ancestors 'none'",
           "/admin": "frame-ancestors 'none'"}


def mount(app: "FastAPI", engine: "Engine") -> None:
    """Add the web client's routes and static files to ``app``."""
    api = APIRouter(tags=["web client"])

    settings = engine.settings

    def ws_url() -> str:
        """The configured public gateway URL, else the bound address: never the
        request's Host header, which a client (or a poisoned cache) chooses."""
        if settings.public_ws_url:
            return settings.public_ws_url
        bound = engine.ws_bound
        host, port = (bound.host, bound.port) if bound else (settings.ws.host, settings.ws.port)
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        scheme = "wss" if settings.tls_cert else "ws"
        return f"{scheme}://{host}:{port}/ws"

    def csp() -> str:
        hosts = "".join(f" https://{h} https://*.{h}" for h in sorted(
            host_list(settings.image_hosts)))
        url = urlsplit(ws_url())
        return CSP.format(hosts=hosts, ws=f"{url.scheme}://{url.netloc}")

    def page(name: str, framing: str) -> Any:
        async def serve() -> FileResponse:
            return FileResponse(WEB / name, media_type="text/html", headers={
                "Content-Security-Policy": csp() + framing, "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff"})
        return serve

    for path, name in PAGES.items():
        api.add_api_route(path, page(name, FRAMING[path]), methods=["GET"],
                          include_in_schema=False)

    @api.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:  # browsers ask for it on any page (/docs too)
        return FileResponse(WEB / "favicon.svg", media_type="image/svg+xml",
                            headers={"Cache-Control": "max-age=86400"})

    @api.get("/widget.js", include_in_schema=False)
    async def widget() -> FileResponse:
        return FileResponse(WEB / "widget.js", media_type="text/javascript",
                            headers={"Cache-Control": "no-cache"})

    @api.get("/api/client-config")
    async def client_config() -> Any:
        """Where the browser finds the gateway (``public_ws_url`` if set, else the
        gateway's bound address)."""
        return {"ws_url": ws_url(), "version": __version__}

    app.include_router(api)
    app.mount("/static", StaticFiles(directory=WEB), name="static")
