"""MangaDex's rules as the sandbox enforces them.

The sandbox is an independent implementation of the HTTP contract (../shared/spec and
API-NOTES.md), so it states these numbers and patterns itself instead of importing the client's
`mdupload.limits`: a mistake in one is then caught by the other.
"""

from __future__ import annotations

MB = 1024 * 1024

FILES_PER_REQUEST = 10
FILES_PER_SESSION = 500
BYTES_PER_FILE = 20 * MB
BYTES_PER_SESSION = 150 * MB
MAX_SIDE_PX = 10_000
# A whole batch cannot be larger than this (10 files of 20 MB and the multipart overhead).
MAX_REQUEST_BYTES = FILES_PER_REQUEST * BYTES_PER_FILE + MB

# Pillow format name -> MIME type; the format is decided from the bytes (MPO is a JPEG with extra frames).
ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "GIF": "image/gif"}

CONTENT_RATINGS = ("safe", "suggestive", "erotica", "pornographic")
DEFAULT_CONTENT_RATINGS = ("safe", "suggestive", "erotica")

# Rate limits: the global allowance per IP, and per endpoint (bucket -> requests per window in seconds).
GLOBAL_LIMIT = (5, 1)
ENDPOINT_LIMITS = {
    "upload.get": (30, 60),
    "upload.begin": (20, 60),
    "upload.file": (250, 60),
    "upload.commit": (10, 60),
    "upload.abandon": (30, 60),
    "at-home.server": (40, 60),
}

CHAPTER_LIST_MAX_LIMIT = 100
FEED_MAX_LIMIT = 500
SEARCH_MAX_LIMIT = 100  # GET /manga, GET /group
CHAPTER_LIST_MAX_WINDOW = 10_000  # offset + limit

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
LANGUAGE_PATTERN = r"^[a-z]{2}(-[a-z]{2})?$"
QUERY_LANGUAGE_PATTERN = r"^[a-zA-Z\-]{2,5}$"
DATETIME_PATTERN = r"^\d{4}-[0-1]\d-([0-2]\d|3[0-1])T([0-1]\d|2[0-3]):[0-5]\d:[0-5]\d$"

_UUID = {"type": "string", "pattern": UUID_PATTERN}
_NUMBER = {"type": ["string", "null"], "maxLength": 8, "pattern": r"^((0|[1-9]\d*)(\.\d+)?[a-z]?)?$"}

# JSON Schemas of the request bodies (the spec's, plus what the live service requires: termsAccepted).
BEGIN_SESSION = {
    "type": "object",
    "properties": {"manga": _UUID, "groups": {"type": "array", "maxItems": 10, "items": _UUID}},
    "required": ["manga", "groups"],
    "additionalProperties": False,
}
BEGIN_EDIT_SESSION = {
    "type": "object",
    "properties": {"version": {"type": "integer", "minimum": 1}},
    "required": ["version"],
    "additionalProperties": False,
}
CHAPTER_DRAFT = {
    "type": "object",
    "properties": {
        "volume": _NUMBER,
        "chapter": _NUMBER,
        "title": {"type": ["string", "null"], "maxLength": 255},
        "translatedLanguage": {"type": "string", "pattern": LANGUAGE_PATTERN},
        "externalUrl": {"type": ["string", "null"], "maxLength": 512, "pattern": "^https?://"},
        "publishAt": {"type": "string", "pattern": DATETIME_PATTERN},
    },
    "required": ["volume", "chapter", "title", "translatedLanguage"],
    "additionalProperties": False,
}
COMMIT_SESSION = {
    "type": "object",
    "properties": {
        "chapterDraft": CHAPTER_DRAFT,
        "pageOrder": {"type": "array", "minItems": 1, "maxItems": FILES_PER_SESSION, "items": _UUID},
        "termsAccepted": {"const": True},
    },
    "required": ["chapterDraft", "pageOrder", "termsAccepted"],
}
CHAPTER_EDIT = {
    "type": "object",
    "properties": {
        "volume": _NUMBER,
        "chapter": _NUMBER,
        "title": {"type": ["string", "null"], "maxLength": 255},
        "translatedLanguage": {"type": "string", "pattern": LANGUAGE_PATTERN},
        "groups": {"type": "array", "maxItems": 10, "items": _UUID},
        "version": {"type": "integer", "minimum": 1},
    },
    "required": ["version"],
    "additionalProperties": False,
}
DELETE_FILES = {"type": "array", "minItems": 1, "items": _UUID}
CHECK_APPROVAL = {
    "type": "object",
    "properties": {"manga": _UUID, "locale": {"type": "string", "pattern": LANGUAGE_PATTERN}},
    "required": ["manga", "locale"],
}
REPORT = {
    "type": "object",
    "properties": {
        "url": {"type": "string", "pattern": "^https?://"},
        "success": {"type": "boolean"},
        "cached": {"type": "boolean"},
        "bytes": {"type": "integer", "minimum": 0},
        "duration": {"type": "integer", "minimum": 0},
    },
    "required": ["url", "success", "cached", "bytes", "duration"],
}
