"""`mdupload sandbox`: serve a local MangaDex (and, with --lanraragi, a local LANraragi) until Ctrl-C or SIGTERM."""

from __future__ import annotations

import re
import secrets
import signal
import threading
from pathlib import Path

import click

from .config import FIELDS, ConfigError, SandboxConfig, load_catalog, load_profile, load_users
from .lanraragi import RunningLanraragi, start_lanraragi
from .server import start_sandbox

LANRARAGI_CATEGORY = "Manga"  # the static category a --lanraragi library starts with

_RATE = click.FloatRange(0, 1)
_SECONDS = click.FloatRange(0)


def _bytes_per_second(ctx, param, value: str | None) -> int | None:
    if value is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:i?B)?(?:/s)?\s*", value)
    if not match or float(match[1]) <= 0:
        raise click.BadParameter("a positive number of bytes per second, optionally with K, M or G (e.g. 512K)")
    return int(float(match[1]) * 1024 ** " KMG".index(match[2].upper() or " "))


@click.command("sandbox")
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="API and token port; 0 (the default) picks a free one.")
@click.option("--athome-port", type=click.IntRange(0, 65535),
              help="Port of the image host (MangaDex@Home nodes and reports); 0 (the default) picks a free one.")
@click.option("--state", "state_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep accounts, sessions, files and chapters in DIR across restarts (default: a temporary folder).")
@click.option("--users", "users_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML/JSON list of extra accounts: username, password, client_id, client_secret.")
@click.option("--rate-limits/--no-rate-limits", default=None, help="Count MangaDex's rate limits (default on).")
@click.option("--profile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON/YAML file of options (the names below, with - or _); options given here win.")
@click.option("--seed", type=int, help="Seed of every random fault, to replay a run (default: random, printed).")
@click.option("--token-lifetime", type=click.FloatRange(0, min_open=True), help="Access token lifetime in seconds (900).")
@click.option("--refresh-lifetime", type=click.FloatRange(0, min_open=True),
              help="Refresh token lifetime in seconds (86400).")
@click.option("--approval-required", multiple=True, metavar="MANGA:LOCALE",
              help="Uploads for this manga and language need staff approval (either may be *); repeatable.")
@click.option("--processing-delay", type=_SECONDS,
              help="Seconds MangaDex takes to process a committed chapter (4; each one draws 0.5x to 1.5x of it); "
                   "until then it is not listed and has no pages. 0: at once.")
@click.option("--approval-delay", type=_SECONDS,
              help="Seconds a chapter that needs approval (--approval-required) waits on top of processing (120).")
@click.option("--catalog", "catalog_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML/JSON file of the mangas, groups and published chapters to add to the catalogue.")
@click.option("--athome-url-ttl", type=click.FloatRange(0, min_open=True),
              help="Seconds a MangaDex@Home base URL stays valid before nodes answer 403 (900).")
@click.option("--latency", type=_SECONDS, help="Seconds added before every answer.")
@click.option("--bandwidth", callback=_bytes_per_second, help="Cap on all request bodies together, bytes/s (e.g. 2M).")
@click.option("--file-processing-time", type=_SECONDS, help="Seconds spent per accepted file of a batch.")
@click.option("--error-rate", type=_RATE, help="Share of API calls answered 500/502/503.")
@click.option("--burst-rate", type=_RATE, help="Chance per API call that a burst of 429 answers starts.")
@click.option("--burst-length", type=click.IntRange(1), help="429 answers in a burst (3).")
@click.option("--drop-rate", type=_RATE, help="Share of calls with a body whose connection closes mid-body.")
@click.option("--lost-answer-rate", type=_RATE,
              help="Share of begin/upload/commit calls that take effect but are never answered.")
@click.option("--lost-answer-stall", type=_SECONDS, help="Seconds to stall before closing a lost answer (0).")
@click.option("--early-expiry-rate", type=_RATE, help="Share of authenticated calls whose token expires early (401).")
@click.option("--athome-fail-rate", type=_RATE, help="Share of image requests a node fails (500 or a dropped connection).")
@click.option("--lanraragi", "with_lanraragi", is_flag=True,
              help="Also serve a local LANraragi library (for `mdupload archive`), with one static category.")
@click.option("--lanraragi-port", type=click.IntRange(0, 65535), default=0,
              help="Port of the LANraragi library; 0 (the default) picks a free one.")
@click.option("--lanraragi-key", metavar="KEY",
              help="The library's API key (default: a random one, printed); an empty KEY serves it open.")
@click.option("--quiet", is_flag=True, help="Do not print one line per request.")
def sandbox_command(profile: Path | None, users_file: Path | None, catalog_file: Path | None, quiet: bool, with_lanraragi: bool,
                    lanraragi_port: int, lanraragi_key: str | None, **options) -> None:
    """Run a local MangaDex (API, OAuth token endpoint, MangaDex@Home) to rehearse uploads against.

    It prints its URLs and the MDUPLOAD_* environment lines that point mdupload at it, then serves
    until Ctrl-C. Demo account: user demo, password demo, client mdupload-demo, secret demo-secret.
    With --lanraragi it also serves a local LANraragi library and prints its URL, key and category.
    """
    try:
        settings = load_profile(profile) if profile else {}
        settings.update({k: v for k, v in options.items() if v is not None and v != ()})
        if users_file:
            settings["users"] = load_users(users_file)
        if catalog_file:
            settings.update(load_catalog(catalog_file))
        config = SandboxConfig(**settings)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        sandbox = start_sandbox(config)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {config.host}: {exc.strerror or exc}; "
                                   "choose another --port (or --port 0 for a free one)") from exc
    except ValueError as exc:  # a --state folder written by another version
        raise click.ClickException(str(exc)) from exc
    library = None
    if with_lanraragi:
        key = secrets.token_urlsafe(18) if lanraragi_key is None else lanraragi_key or None
        try:
            library = start_lanraragi(api_key=key, host=config.host, port=lanraragi_port,
                                      categories=[LANRARAGI_CATEGORY])
        except OSError as exc:
            sandbox.stop()
            raise click.ClickException(f"cannot serve LANraragi on {config.host}: {exc.strerror or exc}; choose "
                                       "another --lanraragi-port (or 0 for a free one)") from exc
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        _introduce(sandbox, config, library)
        if not quiet:
            sandbox.on_request(_print_request)
            if library is not None:
                library.on_request(_print_request)
        while not stop.wait(0.5):
            pass
    finally:
        sandbox.stop()
        if library is not None:
            library.stop()
    click.echo("sandbox stopped", err=True)


def _introduce(sandbox, config: SandboxConfig, library: RunningLanraragi | None = None) -> None:
    where = f"in {sandbox.state_dir}" if config.state_dir else "in a temporary folder (gone at exit; --state DIR keeps it)"
    faults = [f"{name}={getattr(config, name)}" for name in sorted(FIELDS)
              if name.endswith("_rate") and getattr(config, name)]
    network = [f"{name}={getattr(config, name)}" for name in ("latency", "bandwidth", "file_processing_time")
               if getattr(config, name)]
    lines = [
        "MangaDex sandbox (local; not the real service)",
        f"  API      {sandbox.api_url}",
        f"  token    {sandbox.auth_url}",
        f"  images   {sandbox.athome_base}  (MangaDex@Home nodes; reports to {sandbox.report_url})",
        f"  state    {sandbox.state_url}  (sandbox-only; data kept {where})",
        f"  limits   {'MangaDex rate limits on' if config.rate_limits else 'rate limits off'}",
        f"  faults   {', '.join(faults + network) or 'none'} (seed {sandbox.seed})",
        f"  process  chapters listed and readable {config.processing_delay:g} s (0.5x to 1.5x) after their commit"
        + (f", {config.approval_delay:g} s more when approval is required" if config.approval_required else ""),
    ]
    env = dict(sandbox.env)
    if library is not None:
        category = library.state()["categories"][0]["id"]
        lines += [
            "",
            "LANraragi sandbox (local; not the real server)",
            f"  library  {library.url}  (API key {'required' if library.api_key else 'none: open'})",
            f"  category {category} ({LANRARAGI_CATEGORY}): put it in the manifest as `lanraragi: category: {category}`",
            f"  state    {library.url}/_sandbox/state  (sandbox-only; kept in memory, gone at exit)",
        ]
        env["MDUPLOAD_LANRARAGI_URL"] = library.url
        if library.api_key:
            env["MDUPLOAD_LANRARAGI_KEY"] = library.api_key
    lines += [
        "",
        "Point mdupload at it:",
        *(f"export {name}={value}" for name, value in env.items()),
        "",
        "Serving until Ctrl-C.",
    ]
    click.echo("\n".join(lines))


def _print_request(entry: dict) -> None:
    status = entry["status"] if entry["status"] is not None else "no answer"
    fault = f"  [fault: {entry['fault']}]" if entry.get("fault") else ""
    click.echo(f"{entry['method']:6} {entry['host']}{entry['path']} -> {status}{fault}", err=True)
