"""`mdupload whoami`: which account commands use here, and where its credentials come from (accounts/store.py, accounts/resolve.py)."""

from __future__ import annotations

import click

from ..accounts.resolve import client_for, resolve
from ..accounts.store import ACCOUNT_ENV, AccountStore
from ..errors import AuthError
from ..mangadex.auth import Credentials
from ..output import account_json, account_time, print_json
from .options import host_options, json_flag, settings_for


@click.command("whoami")
@click.option("--account", "name", metavar="NAME", help=f"Which stored account of this API (else {ACCOUNT_ENV}, "
                                                         "else the one signed in last).")
@click.option("--all", "everything", is_flag=True, help="List every stored account, for every API.")
@click.option("--check", is_flag=True, help="Also sign in, to prove MangaDex still accepts the credentials.")
@host_options
@json_flag
def whoami(name, everything, check, api_url, auth_url, dev, as_json):
    """Show which account commands use here, and where its credentials come from."""
    environ = settings_for().environ
    store = AccountStore.from_env(environ)
    if everything:
        accounts = store.accounts()
        for account in accounts:
            click.echo(f"{account.username} at {account.api_url} (token URL {account.auth_url}), in "
                       f"{store.describe(account)}, signed in {account_time(account.logged_in_at)}", err=True)
        if not accounts:
            click.echo(f"no account is stored (in {store.folder})", err=True)
        if Credentials.in_env(environ):
            click.echo("MDUPLOAD_* credentials are set in this environment: they win over every stored account",
                       err=True)
        if as_json:
            print_json({"ok": True, "accounts": [account_json(store, a, "stored") for a in accounts]})
        return
    resolved = resolve(api_url, auth_url, dev, account=name, environ=environ)
    hosts, credentials = resolved.hosts, resolved.credentials
    click.echo(f"account   {credentials.username}", err=True)
    click.echo(f"API       {hosts.api_url} (token URL {hosts.auth_url})", err=True)
    if resolved.account is None:
        click.echo("from      the environment (MDUPLOAD_USERNAME, MDUPLOAD_PASSWORD, MDUPLOAD_CLIENT_ID, "
                   "MDUPLOAD_CLIENT_SECRET); stored accounts are not used while these are set", err=True)
        document = {"account": credentials.username, "api_url": hosts.api_url, "auth_url": hosts.auth_url,
                    "source": "environment"}
    else:
        account = resolved.account
        click.echo(f"from      {store.describe(account)}, stored by `mdupload login` on {account_time(account.logged_in_at)}",
                   err=True)
        expiry = account_time(account.refresh_expires_at)
        click.echo(f"refresh   {'valid until about ' + expiry if expiry else 'does not expire'} "
                   "(as MangaDex said when it was issued)", err=True)
        others = [a.username for a in store.for_api(hosts.api_url) if a.username != account.username]
        if others:
            click.echo(f"also stored for this API: {', '.join(others)} (pick one with --account or {ACCOUNT_ENV})",
                       err=True)
        document = account_json(store, account, account.store)
    client_id = credentials.client_id
    click.echo(f"client    {client_id}", err=True)
    if check:
        client = client_for(api_url, auth_url, dev, account=name, environ=environ)
        answer = client.auth_check()
        if answer.get("isAuthenticated") is not True:
            raise AuthError(f"{hosts.api_url} does not accept the token.", hint=resolved.login_hint)
        roles = ", ".join(str(r) for r in answer.get("roles") or []) or "none"
        click.echo(f"check     MangaDex accepts it (roles: {roles})", err=True)
        document["checked"] = True
    if as_json:
        print_json({"ok": True, **document, "client_id": client_id})
