"""`make demo`: the main job against the built-in sandbox, with no account and no network.

Starts the sandbox on a free loopback port, uploads the example series (manifests/example.yaml,
installed as the data package `mdupload.demo_series`, so this runs from any directory) through the
real command line with the demo account, reads the chapters back from the sandbox's state to show
that they are complete and in order, and stops the sandbox.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

from .sandbox import start_sandbox

EXAMPLE = Path(str(resources.files("mdupload.demo_series") / "example.yaml"))


def run_demo(manifest: Path = EXAMPLE) -> int:
    """Publish `manifest` to a fresh sandbox and show what it holds; the upload's exit code."""
    with start_sandbox() as sandbox, tempfile.TemporaryDirectory(prefix="mdupload-demo-") as scratch:
        print(f"sandbox: API {sandbox.api_url}, token {sandbox.auth_url}", file=sys.stderr)
        env = {**os.environ, **sandbox.env, "MDUPLOAD_LEDGER": str(Path(scratch) / "ledger.sqlite3")}
        command = [sys.executable, "-m", "mdupload", "upload", str(manifest), "--accept-terms"]
        print(f"$ mdupload upload {manifest} --accept-terms", file=sys.stderr)
        code = subprocess.run(command, env=env).returncode
        state = sandbox.state()
        print("\nWhat the sandbox now holds:", file=sys.stderr)
        for chapter in state["chapters"]:
            names = [page["originalFileName"] for page in chapter["pages"]]
            print(f"  chapter {chapter['chapter']!s:>5} ({chapter['translatedLanguage']}) id {chapter['id']}: "
                  f"{len(names)} pages in order: {', '.join(names)}", file=sys.stderr)
        print(f"  open sessions: {len(state['sessions'])}", file=sys.stderr)
    return code


if __name__ == "__main__":  # python -m mdupload.demo [MANIFEST]; the command is commands/demo.py
    sys.exit(run_demo(Path(sys.argv[1]) if len(sys.argv) > 1 else EXAMPLE))
