"""`mdupload logout`: remove a stored account, its client id, client secret and refresh token (accounts/store.py)."""

from __future__ import annotations

import sys

import click

from ..accounts.store import ACCOUNT_ENV, KEYRING_SERVICE, AccountStore
from ..errors import EXIT_FAILED, AuthError, UsageError
from ..mangadex.auth import Credentials
from ..mangadex.client import resolve_hosts
from ..output import print_json
from .options import host_options, json_flag, settings_for


@click.command("logout")
@click.option("--account", "name", metavar="NAME", help=f"Which stored account of this API (else {ACCOUNT_ENV}, "
                                                         "else the one signed in last).")
@click.option("--all", "everything", is_flag=True, help="Remove every stored account, for every API.")
@host_options
@json_flag
def logout(name, everything, api_url, auth_url, dev, as_json):
    """Remove a stored account: its client id, client secret and refresh token."""
    environ = settings_for().environ
    store = AccountStore.from_env(environ)
    if everything:
        removed = store.accounts()
    else:
        hosts = resolve_hosts(api_url=api_url, auth_url=auth_url, dev=dev, environ=environ)
        name = name or environ.get(ACCOUNT_ENV, "").strip() or None
        try:
            chosen = store.select(hosts.api_url, name)
        except AuthError as exc:
            raise UsageError(exc.message, hint="`mdupload whoami --all` lists the stored accounts.") from None
        removed = [chosen] if chosen else []
        if not removed:
            click.echo(f"no account is stored for {hosts.api_url}: nothing to remove", err=True)
    left_behind = {}
    for account in removed:
        left = store.remove(account)
        left_behind[account.key] = left
        kept = {item.secret for item in left}
        gone = [words for name, words in SECRET_WORDS.items() if name not in kept]
        if gone:
            click.echo(f"logged out {account.username} at {account.api_url}: removed its {_and(gone)} from "
                       f"{store.describe(account)}", err=True)
        for item in left:
            click.echo(f"error: could not remove the {SECRET_WORDS[item.secret]} of {account.username} at "
                       f"{account.api_url}: {item.why}. Remove it yourself: in your keyring's app, the entry of service "
                       f"'{KEYRING_SERVICE}' and user '{item.key}', or `keyring del {KEYRING_SERVICE} '{item.key}'`",
                       err=True)
    if removed:
        click.echo("the refresh token stays valid at MangaDex until it expires; to cut off every copy now, "
                   "create a new secret for your personal API client on mangadex.org", err=True)
    if Credentials.in_env(environ):
        click.echo("note: MDUPLOAD_* credentials are still set in this environment", err=True)
    if as_json:
        print_json({"ok": not any(left_behind.values()), "removed": [_removed_json(a, left_behind[a.key])
                                                                     for a in removed]})
    if any(left_behind.values()):
        sys.exit(EXIT_FAILED)


def _removed_json(account, left: list) -> dict:
    document = {"account": account.username, "api_url": account.api_url, "store": account.store}
    if left:  # only when the keyring refused: what is still there, and where
        document["left_behind"] = [{"secret": item.secret, "keyring_service": KEYRING_SERVICE,
                                    "keyring_user": item.key, "why": item.why} for item in left]
    return document


SECRET_WORDS = {"client_id": "client id", "client_secret": "client secret", "refresh_token": "refresh token"}


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
