"""Signing in once: the stored accounts (store.py) and where every command's credentials come from
(resolve.py). The commands are commands/login.py, logout.py and whoami.py."""
