"""mdupload: publish manga chapters to MangaDex from a YAML manifest."""

__version__ = "0.1.0"
