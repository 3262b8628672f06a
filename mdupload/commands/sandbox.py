"""`mdupload sandbox`: the command lives with the sandbox (mdupload/sandbox/cli.py), which imports nothing of
the client; this module is the one place the client's command line reaches into it."""

from __future__ import annotations

from ..sandbox.cli import sandbox_command as sandbox

__all__ = ["sandbox"]
