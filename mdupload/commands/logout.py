"""`mdupload logout`: remove a stored account, its client id, client secret and refresh token (accounts/store.py)."""

from __future__ import annotations

import click

from ..accounts.store import ACCOUNT_ENV, AccountStore
from ..errors import AuthError, UsageError
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
    for account in removed:
        store.remove(account)
        click.echo(f"logged out {account.username} at {account.api_url}: removed its client id, client secret "
                   f"and refresh token from {store.describe(account)}", err=True)
    if removed:
        click.echo("the refresh token stays valid at MangaDex until it expires; to cut off every copy now, "
                   "create a new secret for your personal API client on mangadex.org", err=True)
    if Credentials.in_env(environ):
        click.echo("note: MDUPLOAD_* credentials are still set in this environment", err=True)
    if as_json:
        print_json({"ok": True, "removed": [{"account": a.username, "api_url": a.api_url, "store": a.store}
                                            for a in removed]})
