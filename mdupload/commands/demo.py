"""`mdupload demo`: upload the example series to a local sandbox, with no account and no network (demo.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..demo import EXAMPLE, run_demo


@click.command("demo")
@click.argument("manifest", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def demo(manifest):
    """Upload MANIFEST (default: the example series) to a sandbox started for the purpose, then show what it holds."""
    sys.exit(run_demo(manifest or EXAMPLE))
