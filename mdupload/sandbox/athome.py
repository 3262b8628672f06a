"""The image host: MangaDex@Home nodes (`{baseUrl}/{data|data-saver}/{hash}/{name}`) and the report
endpoint (as on api.mangadex.network/report), on a port of their own, so that the request log shows
which host every request reached and whether it carried an Authorization header.

A base URL is valid for its chapter only and for `athome_url_ttl` seconds; after that a node
answers 403. An image request carrying an `Authorization` header is refused (403) and logged:
MangaDex@Home nodes reject them. `data-saver` serves a separate, smaller JPEG rendition of each page
under its own file name (made on first request, then kept). The first fetch of a file answers
`X-Cache: MISS`, later ones `HIT`. Images are streamed from the blob store with their
Content-Length, as a node sends them.
"""

from __future__ import annotations

import os
import tempfile

from PIL import Image
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import wrap_file

from . import rules
from .app import Dropped, logger
from .bodies import json_body
from .catalog import processed
from .core import REPORT_PATH, Core, json_response, now

# The data-saver rendition: a JPEG at this quality, at most this wide (MangaDex's are smaller, lossy copies).
SAVER_QUALITY = 60
SAVER_MAX_WIDTH = 1000

URL_MAP = Map([
    Rule(REPORT_PATH, endpoint="athome-report", methods=["POST"]),
    Rule("/<token>/data/<chapter_hash>/<name>", endpoint="athome-image", methods=["GET"],
         defaults={"saver": False}),
    Rule("/<token>/data-saver/<chapter_hash>/<name>", endpoint="athome-image", methods=["GET"],
         defaults={"saver": True}),
])


def handle(core: Core, request: Request, endpoint: str, args: dict, entry: dict) -> Response:
    """Answer one request to the image host."""
    if endpoint == "athome-report":
        return _report(core, request)
    rng = core.faults.draw("athome_fail")
    if rng is not None:
        entry["fault"] = "athome_fail"
        if rng.random() < 0.5:
            raise Dropped("athome_fail")
        return Response("node failure (sandbox fault)", status=500, content_type="text/plain")
    if "Authorization" in request.headers:
        logger.warning("refused an image request carrying an Authorization header: %s", request.path)
        return Response("image requests must not carry an Authorization header", status=403,
                        content_type="text/plain")
    return _image(core, request, **args)


def _image(core: Core, request: Request, token: str, chapter_hash: str, name: str, saver: bool) -> Response:
    with core.store.lock:
        base = core.athome_bases.get(token)
        if base is None or now() - base[2] > core.config.athome_url_ttl:
            return Response("this base URL is not valid (any more): ask /at-home/server again", status=403,
                            content_type="text/plain")
        chapter = core.store.records.chapters.get(base[0])
        if chapter is None or base[1] != chapter_hash or chapter.hash != chapter_hash:
            return Response("this base URL is for another chapter", status=403, content_type="text/plain")
        pages = chapter.pages if processed(chapter) else []
        page = next((p for p in pages if (p.saver_name if saver else p.name) == name), None)
        if page is None:
            return Response("no such file", status=404, content_type="text/plain")
        if saver:
            _make_saver_rendition(core, page.file_hash)
        try:  # opened under the lock: a blob no chapter uses any more may be deleted right after
            body = (core.store.saver_blob if saver else core.store.blob)(page.file_hash).open("rb")
        except OSError:
            return Response("no such file", status=404, content_type="text/plain")
        key = f"{'data-saver' if saver else 'data'}/{chapter_hash}/{name}"
        cache = "HIT" if key in core.cached else "MISS"
        core.cached.add(key)
    headers = {"X-Cache": cache, "Content-Length": str(os.fstat(body.fileno()).st_size)}
    return Response(wrap_file(request.environ, body), content_type="image/jpeg" if saver else page.mime_type,
                    headers=headers, direct_passthrough=True)


def _make_saver_rendition(core: Core, file_hash: str) -> None:
    """Write the data-saver JPEG of a blob once (called under the store lock, so never twice at once)."""
    target = core.store.saver_blob(file_hash)
    if target.exists():
        return
    with Image.open(core.store.blob(file_hash)) as image:
        image.seek(0)
        rendition = image.convert("RGB")
    rendition.thumbnail((SAVER_MAX_WIDTH, rules.MAX_SIDE_PX))
    with tempfile.NamedTemporaryFile(dir=core.store.incoming, delete=False) as out:
        rendition.save(out, "JPEG", quality=SAVER_QUALITY)
    os.replace(out.name, target)


def _report(core: Core, request: Request) -> Response:
    body = json_body(request, rules.REPORT)
    with core.store.lock:
        core.store.records.reports.append({**body, "receivedAt": now(), "authorization": "Authorization" in request.headers})
        core.store.save()
    return json_response({"result": "ok"})
