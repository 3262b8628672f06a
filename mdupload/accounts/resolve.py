"""Where every command's credentials come from (`resolve`), and a signed-in client (`client_for`).

Every command finds its credentials the same way (`resolve`):
1. the environment, when any of MDUPLOAD_USERNAME, _PASSWORD, _CLIENT_ID or _CLIENT_SECRET is set
   (CI): those four, never a stored account;
2. the account stored for the API in use: `--account` or MDUPLOAD_ACCOUNT names one, else the one
   that signed in last.
MangaDex rotates refresh tokens; each new one is written back, so a stored sign-in that is used
stays valid. One that expired or was revoked stops with "run mdupload login again" (exit 3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..deadlines import Timeouts
from ..errors import AuthError
from ..mangadex.auth import ENV_VARS, Credentials
from ..mangadex.client import (
    Hosts,
    MangaDexClient,
    resolve_hosts,
)
from ..settings import (
    AUTH_URL,
)
from .store import ACCOUNT_ENV, AccountStore, StoredAccount, login_line

# --- where a command's credentials come from ------------------------------------------------------

@dataclass
class Resolved:
    hosts: Hosts
    credentials: Credentials
    source: str  # "environment", "keyring" or "file"
    account: StoredAccount | None = None
    store: AccountStore | None = None
    login_hint: str = ""


def resolve(api_url: str | None = None, auth_url: str | None = None, dev: bool = False, *,
            account: str | None = None, environ: Mapping[str, str],
            store: AccountStore | None = None) -> Resolved:
    """The hosts and credentials a command uses: the environment's, else the stored account's."""
    hosts = resolve_hosts(api_url=api_url, auth_url=auth_url, dev=dev, environ=environ)
    if Credentials.in_env(environ):
        set_vars = [var for var in ENV_VARS.values() if environ.get(var, "").strip()]
        missing = [var for var in ENV_VARS.values() if var not in set_vars]
        if missing:
            raise AuthError(f"Only some MangaDex credentials are set in the environment ({', '.join(set_vars)}); "
                            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing.",
                            hint="The environment always wins over accounts stored by `mdupload login`: set all "
                                 "four variables, or unset them all to use the stored account.")
        return Resolved(hosts, Credentials.from_env(environ), "environment",
                        login_hint="Check MDUPLOAD_USERNAME, MDUPLOAD_PASSWORD, MDUPLOAD_CLIENT_ID and "
                                   "MDUPLOAD_CLIENT_SECRET.")
    store = store or AccountStore.from_env(environ)
    name = account or environ.get(ACCOUNT_ENV, "").strip() or None
    stored = store.select(hosts.api_url, name)
    if stored is None:
        raise AuthError(f"Not signed in to {hosts.api_url}: no MDUPLOAD_* credentials are set and no account is "
                        "stored for this API.",
                        hint=f"Run `{login_line(hosts.api_url, _explicit_auth(auth_url, environ))}` once, or set "
                             "MDUPLOAD_USERNAME, MDUPLOAD_PASSWORD, MDUPLOAD_CLIENT_ID and MDUPLOAD_CLIENT_SECRET.")
    if stored.auth_url != hosts.auth_url:
        if _explicit_auth(auth_url, environ) or dev:
            raise AuthError(f"The account {stored.username} stored for {hosts.api_url} signs in at {stored.auth_url}, "
                            f"but this command was told to use {hosts.auth_url}; its tokens go to the token URL "
                            "that issued them only.",
                            hint=f"Drop --auth-url / MDUPLOAD_AUTH_URL, or run "
                                 f"`{login_line(hosts.api_url, hosts.auth_url)}` to sign in there.")
        hosts = Hosts(hosts.api_url, stored.auth_url)
    client_id, client_secret, refresh_token = store.secrets_of(stored)
    credentials = Credentials.from_refresh_token(client_id, client_secret, refresh_token, username=stored.username)
    several = len(store.for_api(hosts.api_url)) > 1
    hint = f"Run `{login_line(hosts.api_url, stored.auth_url, username=stored.username if several else None)}` again."
    return Resolved(hosts, credentials, stored.store, stored, store, hint)


def _explicit_auth(auth_url: str | None, environ: Mapping[str, str]) -> str | None:
    return auth_url or environ.get(AUTH_URL.variable) or None


def client_for(api_url: str | None = None, auth_url: str | None = None, dev: bool = False, *,
               account: str | None = None, environ: Mapping[str, str], **client_options):
    """A MangaDexClient signed in as `resolve` says; a stored account's rotated refresh tokens are kept."""
    resolved = resolve(api_url, auth_url, dev, account=account, environ=environ)
    client_options.setdefault("timeouts", Timeouts.from_env(environ))
    client = MangaDexClient(api_url=resolved.hosts.api_url, auth_url=resolved.hosts.auth_url,
                            credentials=resolved.credentials, **client_options)
    client.tokens.login_hint = resolved.login_hint
    if resolved.account is not None:
        store, stored = resolved.store, resolved.account
        client.tokens.on_refresh_token = lambda token, expires_at: store.keep_refresh_token(stored, token, expires_at)
    return client
