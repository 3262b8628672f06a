"""`mdupload login`: sign in once and keep what signing in again needs, never the password (accounts/store.py).

The username, password, client id and secret come from the option, else MDUPLOAD_USERNAME,
MDUPLOAD_PASSWORD, MDUPLOAD_CLIENT_ID and MDUPLOAD_CLIENT_SECRET, else a prompt (in a terminal only,
never when CI is set).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

import click

from ..accounts.store import AccountStore
from ..deadlines import Timeouts
from ..errors import AuthError
from ..mangadex.auth import ENV_VARS, Credentials
from ..mangadex.client import MangaDexClient, resolve_hosts
from ..output import account_json, print_json
from ..settings import OFF_VALUES
from .options import host_options, json_flag, settings_for


@click.command("login")
@click.option("--username", metavar="NAME", help="The MangaDex username (else MDUPLOAD_USERNAME, else asked).")
@host_options
@json_flag
def login(username, api_url, auth_url, dev, as_json):
    """Sign in once and keep what signing in again needs (never the password).

    Reads MDUPLOAD_USERNAME, MDUPLOAD_PASSWORD, MDUPLOAD_CLIENT_ID and MDUPLOAD_CLIENT_SECRET and asks
    for what is missing (in a terminal only; never when CI is set). Stores the client id, client secret
    and refresh token in the system keyring, or else in a file readable by you alone. Signing in again
    replaces the stored account; every API (production, --dev, a sandbox) keeps its own accounts.
    """
    environ = settings_for().environ
    hosts = resolve_hosts(api_url=api_url, auth_url=auth_url, dev=dev, environ=environ)
    store = AccountStore.from_env(environ)
    store.accounts()  # an unsafe or broken store is refused before the password is asked for
    values = _gather(username, environ)
    credentials = Credentials(values["username"], values["password"], values["client_id"], values["client_secret"])
    issued: list[tuple[str, float | None]] = []
    client = MangaDexClient(api_url=hosts.api_url, auth_url=hosts.auth_url, credentials=credentials,
                            timeouts=Timeouts.from_env(environ))
    client.tokens.on_refresh_token = lambda token, expires_at: issued.append((token, expires_at))
    try:
        client.tokens.login()
    except AuthError as exc:
        raise AuthError(exc.message, hint="Check the username and password, and that the client id and secret are "
                                          "your personal API client's; then run `mdupload login` again.") from None
    if not issued:
        raise AuthError(f"{hosts.auth_url} signed {credentials.username} in but gave no refresh token, so there is "
                        "nothing to store.", hint="Set the MDUPLOAD_* credentials in the environment instead.")
    check = client.auth_check()
    if check.get("isAuthenticated") is not True:
        raise AuthError(f"{hosts.api_url} does not accept the token {hosts.auth_url} issued.",
                        hint="Check that --api-url and --auth-url (or MDUPLOAD_API_URL and MDUPLOAD_AUTH_URL) belong "
                             "to the same MangaDex.")
    refresh_token, expires_at = issued[-1]
    account, why_not = store.save_login(api_url=hosts.api_url, auth_url=hosts.auth_url, username=credentials.username,
                                        client_id=credentials.client_id, client_secret=credentials.client_secret,
                                        refresh_token=refresh_token, refresh_expires_at=expires_at)
    where = store.describe(account)
    click.echo(f"signed in as {account.username} at {hosts.api_url}", err=True)
    click.echo(f"stored the client id, client secret and refresh token in {where}; the password is not stored",
               err=True)
    if why_not and account.store == "file":
        click.echo(f"note: not in the system keyring: {why_not}", err=True)
    if Credentials.in_env(environ):
        click.echo("note: MDUPLOAD_* credentials are set in this environment; they win over the stored account "
                   "for as long as they are set", err=True)
    if as_json:
        print_json({"ok": True, **account_json(store, account, "stored")})


def _interactive(environ: Mapping[str, str]) -> bool:
    """Prompting is allowed: stdin is a terminal and CI is not set."""
    ci = environ.get("CI", "").strip().lower()
    try:
        terminal = sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):
        terminal = False
    return terminal and ci in ("", *OFF_VALUES)


def _gather(username: str | None, environ: Mapping[str, str]) -> dict[str, str]:
    """Username, password, client id and secret: option, else environment, else asked (in a terminal only)."""
    values = {key: environ.get(var, "") for key, var in ENV_VARS.items()}
    values = {key: value if key == "password" else value.strip() for key, value in values.items()}
    if username:
        values["username"] = username.strip()
    missing = [key for key, value in values.items() if not value]
    if missing and not _interactive(environ):
        why = "CI is set" if environ.get("CI", "").strip().lower() not in ("", *OFF_VALUES) else "stdin is not a terminal"
        raise AuthError(f"Cannot sign in: {', '.join(ENV_VARS[key] for key in missing)} "
                        f"{'is' if len(missing) == 1 else 'are'} not set, and mdupload does not prompt here ({why}).",
                        hint="Set them in the environment, or run `mdupload login` in a terminal. The client id and "
                             "secret are your personal API client's (mangadex.org: Settings > API Clients).")
    prompts = {"username": ("MangaDex username", False), "password": ("Password", True),
               "client_id": ("Personal API client id", False), "client_secret": ("Personal API client secret", True)}
    for key in missing:
        text, hidden = prompts[key]
        value = click.prompt(text, hide_input=hidden, err=True, default="", show_default=False)
        if key != "password":
            value = value.strip()
        if not value:
            raise AuthError(f"Cannot sign in without the {text.lower()}.")
        values[key] = value
    return values
