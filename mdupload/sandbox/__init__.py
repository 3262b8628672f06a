"""`mdupload sandbox`: a local, faithful MangaDex for demos, tests, benchmarks and release rehearsals.

It implements MangaDex's HTTP contract (../shared/spec, API-NOTES.md) on its own and imports nothing
from the rest of mdupload, so a client that works against it works against MangaDex.

Layout (one loopback address, two ports):
- API host `http://127.0.0.1:PORT`: MangaDex's API at the root (`/upload`, `/chapter`, `/at-home/server/…`,
  `/auth/check`, exactly as on api.mangadex.org), the OAuth token endpoint at Keycloak's path
  `/realms/mangadex/protocol/openid-connect/token` (as on auth.mangadex.org), and the sandbox-only
  `GET /_sandbox/state`.
- Image host `http://127.0.0.1:PORT2`: MangaDex@Home nodes (the `baseUrl`s of /at-home/server) and the
  report endpoint `/report` (as on api.mangadex.network).

Demo account: user `demo`, password `demo`, client `mdupload-demo` / secret `demo-secret`.
"""

from .config import (
                     ADULT_MANGA,
                     DEMO_ACCOUNT,
                     DEMO_GROUP,
                     DEMO_MANGA,
                     DOCS_GROUP,
                     SECOND_GROUP,
                     Account,
                     ConfigError,
                     SandboxConfig,
                     load_profile,
                     load_users,
)
from .server import RunningSandbox, start_sandbox

__all__ = ["ADULT_MANGA", "DEMO_ACCOUNT", "DEMO_GROUP", "DEMO_MANGA", "DOCS_GROUP", "SECOND_GROUP", "Account", "ConfigError",
           "RunningSandbox", "SandboxConfig", "load_profile", "load_users", "start_sandbox"]
