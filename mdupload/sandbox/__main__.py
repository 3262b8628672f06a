"""`python -m mdupload.sandbox`: the same as `mdupload sandbox`."""

from .cli import sandbox_command

sandbox_command(prog_name="python -m mdupload.sandbox")
