"""Uploads: images and voice clips, checked by their content, served to participants.

``POST /api/uploads?kind=image|voice`` takes the raw bytes as the body with a
person's JWT (``Authorization: Bearer <token>``). The type is sniffed from
the bytes (the declared Content-Type and any file name are ignored), sizes
are capped per kind. ``GET /api/uploads/{id}`` answers only the uploader and
the participants of conversations the upload was sent in; anyone else gets
404, the same as for an upload that does not exist.
"""

# No ``from __future__ import annotations`` here: FastAPI must evaluate the
# route annotations, which refer to the ``person`` dependency of router().
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote

import filetype
import trio
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from octim.auth import Principal
from octim.domain import uploads
from octim.domain.conversations.model import InvalidBody, TooLarge
from octim.errors import NotFound
from octim.store.blobs import BlobStore

if TYPE_CHECKING:
    from octim.api.auth import Auth
    from octim.engine import Engine

ALLOWED = {
    "image": {"image/jpeg", "image/png", "image/gif", "image/webp"},
    "voice": {"audio/ogg", "audio/mpeg", "audio/mp4", "audio/x-m4a", "audio/m4a",
              "audio/amr", "audio/aac", "audio/x-wav", "audio/wav", "video/webm",
              "audio/webm"},
}


class Upload(BaseModel):
    id: str
    kind: str
    mime: str
    size: int
    url: str


def router(engine: "Engine", auth: "Auth") -> APIRouter:
    """The upload routes."""
    person = auth.person
    api = APIRouter(tags=["uploads"])
    blobs = BlobStore(engine.settings.data / "blobs", engine.store.sealer)

    @api.post("/api/uploads", response_model=Upload, status_code=201)
    async def upload(request: Request, who: Annotated[Principal, Depends(person)],
                     kind: Annotated[Literal["image", "voice"], Query()]) -> Any:
        """Store an image or voice clip; send it with a message whose body is
        ``{"upload": id}``."""
        limit = (engine.settings.max_image_bytes if kind == "image"
                 else engine.settings.max_voice_bytes)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise TooLarge(f"{kind} uploads are limited to {limit} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"{kind} uploads are limited to {limit} bytes")
            chunks.append(chunk)
        data = b"".join(chunks)
        if not data:
            raise InvalidBody("the upload is empty")
        guessed = filetype.guess(data[:8192])
        mime = guessed.mime if guessed is not None else None
        if mime not in ALLOWED[kind]:
            raise InvalidBody(f"the content is not an accepted {kind} "
                              f"(detected {mime or 'unknown'}); the declared type is ignored")
        digest = await trio.to_thread.run_sync(blobs.put, data)
        record = await uploads.create(engine.store, who.user, kind, mime, size, digest,
                                      engine.context.now_ms())
        return Upload(id=record["id"], kind=kind, mime=mime, size=size,
                      url=f"/api/uploads/{record['id']}")

    @api.get("/api/uploads/{upload_id}", response_class=Response,
             responses={200: {"content": {"image/*": {}, "audio/*": {}}}})
    async def download(who: Annotated[Principal, Depends(person)],
                       upload_id: Annotated[str, Path(max_length=64)]) -> Response:
        """The bytes of an upload, for its owner and the participants of its conversations."""
        store = engine.store
        meta = store.get("uploads", upload_id.encode())
        if meta is None or not uploads.may_read(store, meta, who.user, who.role, who.shops):
            raise NotFound(f"no upload {upload_id!r}")
        data = await trio.to_thread.run_sync(blobs.get, meta["sha256"])
        mime = meta["mime"]
        inline = mime.startswith(("image/", "audio/"))
        return Response(data, media_type=mime, headers={
            "X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=86400",
            # Never a document that runs in our origin, even if sniffing were fooled.
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Content-Disposition": "inline" if inline else
            f"attachment; filename*=UTF-8''{quote(meta.get('name') or 'attachment')}"})

    return api
