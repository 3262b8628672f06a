"""MangaDex's numbers, each stated once (see API-NOTES.md).

Everything else in mdupload imports these names instead of repeating a number.
"""

MB = 1024 * 1024

# Upload sessions
FILES_PER_REQUEST = 10
FILES_PER_SESSION = 500
BYTES_PER_FILE = 20 * MB
BYTES_PER_SESSION = 150 * MB
MAX_SIDE_PX = 10_000
MAX_GROUPS = 10

# Formats MangaDex accepts, decided from the bytes: Pillow format name -> (MIME type, extensions)
ACCEPTED_FORMATS = {
    "JPEG": ("image/jpeg", ("jpg", "jpeg")),
    "PNG": ("image/png", ("png",)),
    "GIF": ("image/gif", ("gif",)),
}
ACCEPTED_EXTENSIONS = frozenset(ext for _mime, exts in ACCEPTED_FORMATS.values() for ext in exts)
# What Pillow names a JPEG that carries extra pictures (phone cameras write them): its bytes are a JPEG,
# sent as image/jpeg, and read by any JPEG decoder as its first picture.
JPEG_VARIANTS = frozenset({"MPO"})

# chapterDraft rules (OpenAPI ChapterDraft / ChapterVolume)
CHAPTER_PATTERN = r"^((0|[1-9]\d*)(\.\d+)?[a-z]?)?$"
CHAPTER_MAX_LENGTH = 8
TITLE_MAX_LENGTH = 255
LANGUAGE_PATTERN = r"^[a-z]{2}(-[a-z]{2})?$"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

# Listing chapters (GET /chapter): the largest page, the furthest offset + limit, every content rating
LIST_PAGE_SIZE = 100
LIST_WINDOW = 10_000
CONTENT_RATINGS = ("safe", "suggestive", "erotica", "pornographic")

# Tokens (OAuth): refresh this many seconds before the access token expires
TOKEN_REFRESH_MARGIN_S = 60

# Rate limits: the global allowance per IP and the per-endpoint windows.
GLOBAL_REQUESTS_PER_SECOND = 5
# bucket name -> (requests, window in seconds)
ENDPOINT_LIMITS = {
    "upload.get": (30, 60),  # GET /upload
    "upload.begin": (20, 60),  # POST /upload/begin, POST /upload/begin/{id}
    "upload.file": (250, 60),  # POST /upload/{id}, DELETE /upload/{id}/{file}, DELETE /upload/{id}/batch
    "upload.commit": (10, 60),  # POST /upload/{id}/commit
    "upload.abandon": (30, 60),  # DELETE /upload/{id}
    "at-home.server": (40, 60),  # GET /at-home/server/{id}
}
RATE_LIMIT_DEFAULT_WAIT_S = 60  # on a 429 without X-RateLimit-Retry-After

# Pages smaller than this on each side earn a warning (never a skip)
TINY_PAGE_PX = 32
