"""OAuth2 tokens for a MangaDex "personal API client": the password grant and refreshes.

The user registers a personal client on their MangaDex account (client id and secret); with it the
password grant works for that account. Tokens are asked for with a form POST to the token URL.
A token is refreshed TOKEN_REFRESH_MARGIN_S before it expires, by one thread while the others
wait; a refused refresh falls back to the password grant when the password is known.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .. import limits
from ..errors import AuthError
from ..redact import register_secret
from ..settings import CREDENTIAL_VARIABLES

ENV_VARS = CREDENTIAL_VARIABLES  # username, password, client_id, client_secret: their MDUPLOAD_* variables

CLIENT_HINT = ("Create a personal API client on mangadex.org (Settings > API Clients) and set "
               "MDUPLOAD_CLIENT_ID and MDUPLOAD_CLIENT_SECRET to its id and secret.")
LOGIN_AGAIN = "Run `mdupload login` again."

# on_refresh_token(refresh_token, expires_at): a new refresh token came (expires_at: UNIX time, None: never)
OnRefreshToken = Callable[[str, "float | None"], None]

# post_form(url, form) -> (HTTP status, parsed JSON answer or None); network failures raise ApiError.
PostForm = Callable[[str, dict], tuple[int, "dict | None"]]

log = logging.getLogger("mdupload.auth")


@dataclass(frozen=True)
class Credentials:
    """What signing in needs: the personal client, and the password or a stored refresh token."""

    username: str | None
    password: str | None = field(repr=False)
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)

    def __post_init__(self):
        for secret in (self.password, self.client_secret, self.refresh_token):
            register_secret(secret)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Credentials:
        """Read MDUPLOAD_USERNAME, MDUPLOAD_PASSWORD, MDUPLOAD_CLIENT_ID and MDUPLOAD_CLIENT_SECRET."""
        values = {key: environ.get(var, "").strip() if key != "password" else environ.get(var, "")
                  for key, var in ENV_VARS.items()}
        missing = [ENV_VARS[key] for key, value in values.items() if not value]
        if missing:
            raise AuthError(f"MangaDex credentials are missing: set {', '.join(missing)} in the environment.",
                            hint=CLIENT_HINT if any("CLIENT" in name for name in missing) else None)
        return cls(**values)

    @staticmethod
    def in_env(environ: Mapping[str, str]) -> bool:
        """Whether any MDUPLOAD_* credential variable is set: then the environment alone is used."""
        return any(environ.get(var, "").strip() for var in ENV_VARS.values())

    @classmethod
    def from_refresh_token(cls, client_id: str, client_secret: str, refresh_token: str,
                           username: str | None = None) -> Credentials:
        """Sign in with a stored refresh token, without the password."""
        return cls(username, None, client_id, client_secret, refresh_token)


class TokenManager:
    """Hands out a valid access token to any thread; one refresh in flight at a time.

    `on_refresh_token` is told every new refresh token (MangaDex rotates them), so that a stored
    sign-in can be kept current; `login_hint` is the advice given when a sign-in without a password
    is refused (it names the `mdupload login` command for the environment in use).
    """

    def __init__(self, credentials: Credentials, token_url: str, post_form: PostForm, *,
                 clock: Callable[[], float] = time.time, on_refresh_token: OnRefreshToken | None = None,
                 login_hint: str = LOGIN_AGAIN):
        self.credentials = credentials
        self.token_url = token_url
        self.on_refresh_token = on_refresh_token
        self.login_hint = login_hint
        self._post_form = post_form
        self._clock = clock
        self._lock = threading.Lock()
        self._access: str | None = None
        self._access_until = float("-inf")  # when to refresh (the margin before expiry)
        self._refresh: str | None = credentials.refresh_token
        self._refresh_until = float("inf")

    @property
    def refresh_token(self) -> str | None:
        """The current refresh token (it changes with every refresh), e.g. to store it."""
        return self._refresh

    def access_token(self) -> str:
        with self._lock:
            if self._access is None or self._clock() >= self._access_until:
                self._renew()
            return self._access

    def token_rejected(self, token: str | None) -> None:
        """The API answered 401 to `token`: get a new one, unless another thread already did."""
        with self._lock:
            if token is None or token == self._access:
                self._renew()

    def login(self) -> None:
        """Sign in now (instead of at the first request), to report bad credentials early."""
        with self._lock:
            self._renew()

    # --- grants (called with the lock held) ------------------------------------------------

    def _renew(self) -> None:
        refused = None
        if self._refresh and self._clock() >= self._refresh_until:
            refused = "the refresh token expired"
        elif self._refresh:
            refused = self._grant({"grant_type": "refresh_token", "refresh_token": self._refresh})
            if refused is None:
                return
        if not self.credentials.password:
            who = f" of {self.credentials.username}" if self.credentials.username else ""
            why = f" ({refused})" if refused else ""
            raise AuthError(f"MangaDex no longer accepts the stored sign-in{who}: the refresh token has expired "
                            f"or was revoked{why}.", hint=self.login_hint)
        refused_password = self._grant({"grant_type": "password", "username": self.credentials.username,
                                         "password": self.credentials.password})
        if refused_password is None:
            return
        if refused:
            raise AuthError(f"MangaDex refused both the refresh token ({refused}) and the password "
                            f"({refused_password}) of {self.credentials.username}.", hint=self.login_hint)
        raise AuthError(f"MangaDex refused to sign in as {self.credentials.username}: {refused_password}.",
                        hint="Check MDUPLOAD_USERNAME and MDUPLOAD_PASSWORD, and that MDUPLOAD_CLIENT_ID and "
                             "MDUPLOAD_CLIENT_SECRET are your own personal API client's.")

    def _grant(self, form: dict) -> str | None:
        """Ask for tokens; None when they came, else why they were refused."""
        form = {**form, "client_id": self.credentials.client_id, "client_secret": self.credentials.client_secret}
        asked_at = self._clock()
        status, answer = self._post_form(self.token_url, form)
        answer = answer if isinstance(answer, dict) else {}
        if not 200 <= status < 300:
            reason = answer.get("error_description") or answer.get("error")
            return f"{reason}, HTTP {status}" if reason else f"HTTP {status}"
        access = answer.get("access_token")
        if not isinstance(access, str) or not access:
            raise AuthError(f"The token URL {self.token_url} answered without an access_token.",
                            hint="Check MDUPLOAD_AUTH_URL: it must be MangaDex's OAuth token URL.")
        register_secret(access)
        lifetime = _seconds(answer.get("expires_in"), default=900)
        self._access = access
        self._access_until = asked_at + lifetime - min(limits.TOKEN_REFRESH_MARGIN_S, lifetime / 2)
        refresh = answer.get("refresh_token")
        if isinstance(refresh, str) and refresh:
            register_secret(refresh)
            self._refresh = refresh
            refresh_lifetime = _seconds(answer.get("refresh_expires_in"), default=0)
            # 0 means the refresh token does not expire (an offline token)
            self._refresh_until = asked_at + refresh_lifetime - 1 if refresh_lifetime else float("inf")
            if self.on_refresh_token is not None:
                self._tell(refresh, asked_at + refresh_lifetime if refresh_lifetime else None)
        return None

    def _tell(self, refresh: str, expires_at: float | None) -> None:
        """Pass a new refresh token on; a failure to keep it must not fail the sign-in itself."""
        try:
            self.on_refresh_token(refresh, expires_at)
        except Exception as exc:  # noqa: BLE001 - a store that cannot be written is reported, not fatal
            log.warning("could not keep the new refresh token: %s", exc)


def _seconds(value, *, default: float) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return default
    return seconds if seconds >= 0 else default
