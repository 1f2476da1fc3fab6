"""HTTP status and JSON body for every error the API can answer with.

Every error body is ``{"error": {"code": CODE, "message": TEXT}}`` with a
stable ``code``; clients branch on the code, never on the text.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from octim.errors import OctimError, public_error

log = logging.getLogger("octim.api")


def error_response(status: int, code: str, message: str) -> JSONResponse:
    """The one shape of every error answer."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Map OctIM errors, validation errors and HTTP errors onto the error shape."""

    @app.exception_handler(OctimError)
    async def octim_error(request: Request, exc: OctimError) -> JSONResponse:
        told = public_error(exc)  # the one error table (octim.errors)
        if told is None:
            log.error("request failed", exc_info=exc, extra={"path": request.url.path})
            return error_response(500, "internal", "internal error")
        status, code, message = told
        response = error_response(status, code, message)
        if status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        elif status == 413:
            # The rest of the body was not read: the connection cannot carry another
            # request, and a client must not try (it would see a reset, not an answer).
            response.headers["Connection"] = "close"
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return error_response(422, "invalid_body", problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("request failed", exc_info=exc, extra={"path": request.url.path})
        return error_response(500, "internal", "internal error")
