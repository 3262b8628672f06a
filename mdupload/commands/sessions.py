"""`mdupload sessions`: show (or abandon) the account's open upload session."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from ..output import print_json
from .options import host_options, json_flag, settings_for, signed_in_client


@click.command("sessions")
@click.option("--abandon", is_flag=True, help="Abandon the open session.")
@host_options
@json_flag
def sessions(abandon, api_url, auth_url, dev, as_json):
    """Show (or abandon) the account's open upload session."""
    client = signed_in_client(settings_for(api_url=api_url, auth_url=auth_url, dev=dev))
    session = client.get_open_session()
    if session is None:
        click.echo("no upload session is open on this account", err=True)
        if as_json:
            print_json({"ok": True, "session": None})
        return
    age = datetime.now(UTC) - session.updated_at
    click.echo(f"open session {session.id}: manga {session.manga_id}, groups {', '.join(session.group_ids) or 'none'}, "
               f"{len(session.files)} files, last used {int(age.total_seconds() // 60)} min ago", err=True)
    if abandon:
        client.abandon_session(session.id)
        click.echo(f"abandoned session {session.id}", err=True)
    if as_json:
        print_json({"ok": True, "abandoned": abandon, "session": {
            "id": session.id, "manga": session.manga_id, "groups": list(session.group_ids),
            "files": len(session.files), "updated_at": session.updated_at.isoformat()}})
