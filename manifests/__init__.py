"""The example series of `mdupload demo`, installed as the data package `mdupload.demo_series` (setup.cfg maps manifests/ to it)."""
