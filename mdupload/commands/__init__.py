"""One module per `mdupload` command: parse the options, build the settings, call one service, render its
result, pick the exit code. mdupload/cli.py assembles them into the `mdupload` group."""
