"""Repairs for pages MangaDex would refuse, applied only when asked (`--fix`, `fix: true`).

plan.py says what a repair would do (the checks show it), strip.py where a long strip is cut,
encode.py does one page's repair in a worker process, apply.py runs them over a chapter's pages in
a pool of workers, with a cache.
"""
