"""Finding a chapter's page files in a folder or a .zip/.cbz archive, in natural order, extracted safely.

A page candidate is any file with an image-looking extension, accepted by MangaDex or not (the checks
say what is wrong with it). What is clearly not a page (hidden files, `Thumbs.db`, `__MACOSX/`,
`ComicInfo.xml`) is skipped silently; anything else is skipped with a warning naming it.

Archives are extracted into the work folder under numbered names (`0001.png`...), so no member name
ever becomes a path on disk. Members are streamed through a byte counter against the bounds below:
a header's size is never trusted alone, and no more than the bound is ever written. An archive whose
end record claims more entries than the bound is refused before its directory is read into memory.

A folder is read to a bounded depth and number of entries; a linked page file is read wherever it
points, but a linked folder must stay inside the chapter's folder (a link to `/` or to a home folder
would otherwise pull in every picture there). Page names must be UTF-8 without control characters,
since they are shown, recorded and sent to MangaDex.

One source is one chapter. Its pages may sit in a wrapper folder (`c012/001.png`, as zipping a folder
makes it) or beside one folder of extras, but two or more sibling folders holding pages (`Vol1 Ch1/`,
`Vol1 Ch2/`) are refused with their names, never merged: they are most often several chapters.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import struct
import tempfile
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from natsort import natsort_keygen, ns

from . import limits
from .errors import PageError

PAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "gif", "webp", "avif", "bmp", "tif", "tiff", "jxl", "heic"})
ARCHIVE_SUFFIXES = frozenset({".zip", ".cbz"})
NESTED_ARCHIVE_EXTENSIONS = frozenset({"zip", "cbz", "rar", "cbr", "7z", "cb7", "tar", "cbt", "gz", "tgz", "bz2", "xz"})
JUNK_NAMES = frozenset({"thumbs.db", "desktop.ini", "comicinfo.xml"})  # compared case-insensitively
JUNK_FOLDERS = frozenset({"__MACOSX"})

# Extraction bounds: twice what MangaDex takes per file and per session, and a generous entry count
# (a macOS archive holds a `__MACOSX/._x` entry and a folder entry beside every page).
MAX_MEMBER_BYTES = 2 * limits.BYTES_PER_FILE
MAX_ARCHIVE_BYTES = 2 * limits.BYTES_PER_SESSION
MAX_MEMBERS = 10 * limits.FILES_PER_SESSION
CHUNK_BYTES = 1024 * 1024
# Folder bounds: entries looked at (files and folders) and folders nested within the chapter's folder.
MAX_FOLDER_ENTRIES = MAX_MEMBERS
MAX_FOLDER_DEPTH = 16

_ZIP_UTF8_FLAG = 0x800
_ZIP_ENCRYPTED_FLAG = 0x1
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Characters that reorder or hide text on a terminal (bidirectional overrides, zero-width marks).
_INVISIBLE_CHARACTERS = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # what os.fsdecode makes of bytes that are not UTF-8
_natural_key = natsort_keygen(alg=ns.PATH | ns.IGNORECASE)


@dataclass(frozen=True)
class Page:
    path: Path
    origin: str
    upload_name: str


@dataclass
class CollectedPages:
    source: Path
    pages: list[Page]
    warnings: list[str] = field(default_factory=list)


class NoPagesError(PageError):
    """The source holds no page image at all."""


def collect_pages(source: Path, workdir: Path) -> CollectedPages:
    """The pages of a folder (searched recursively) or a .zip/.cbz (extracted into `workdir`)."""
    source = Path(source)
    shown = _shown(display_path(source))
    try:
        mode = source.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PageError("is a symbolic link that leads back to itself (a symlink loop)", path=shown,
                            hint="Point `pages:` at the real folder or archive.") from None
        if exc.errno == errno.ENOENT:
            raise PageError("does not exist", path=shown,
                            hint="Check the chapter's `pages:` path in the manifest (it is relative to the "
                                 "manifest file).") from None
        raise PageError(f"cannot be read ({exc.strerror})", path=shown) from None
    if stat.S_ISDIR(mode):
        found, ignored = _scan_folder(source, shown)
        separator = "/"
    elif stat.S_ISREG(mode) and source.suffix.lower() in ARCHIVE_SUFFIXES:
        found, ignored = _extract(source, shown, Path(workdir))
        separator = "!"
    else:
        raise PageError("is neither a folder nor a .zip/.cbz archive", path=shown,
                        hint="Point `pages:` at a folder of page images, or at a .zip or .cbz of them.")
    ignored.sort(key=lambda item: _natural_key(item[1]))
    if not found:
        only = f" (only {', '.join(rel for _kind, rel in ignored)})" if ignored else ""
        raise NoPagesError(f"holds no page images{only}", path=shown,
                           hint="Put the chapter's pages in it as JPEG, PNG or GIF files.")
    names = _upload_names([rel for rel, _path in found])
    pages = [Page(path=path, origin=f"{shown}{separator}{rel}", upload_name=name)
             for (rel, path), name in zip(found, names)]
    return CollectedPages(source=source, pages=pages, warnings=[_warning(kind, rel) for kind, rel in ignored])


def display_path(path: Path) -> str:
    """The path as the user knows it: relative to the current folder when it is inside it."""
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def _classify(rel: str) -> str:
    """"page", "junk" (skipped silently), "archive" or "other" (both skipped with a warning)."""
    parts = rel.split("/")
    if any(part.startswith(".") or part in JUNK_FOLDERS for part in parts) or parts[-1].lower() in JUNK_NAMES:
        return "junk"
    extension = PurePosixPath(rel).suffix.lower().lstrip(".")
    if extension in PAGE_EXTENSIONS:
        return "page"
    return "archive" if extension in NESTED_ARCHIVE_EXTENSIONS else "other"


def _warning(kind: str, rel: str) -> str:
    if kind == "archive":
        return f"ignored nested archive {rel}: pages inside an archive within the chapter are not read (extract it)"
    return f"ignored unexpected file {rel}"


def _sorted(items: list[tuple]) -> list[tuple]:
    """(path inside the source, anything) pairs in the natural order of the paths."""
    # Sorting plainly first puts names that differ only in case in one fixed order.
    return sorted(sorted(items, key=lambda item: item[0]), key=lambda item: _natural_key(item[0]))


def _scan_folder(root: Path, shown: str) -> tuple[list[tuple[str, Path]], list[tuple[str, str]]]:
    """The page files (path inside the folder, file) in natural order, and what was skipped with a warning."""
    pages, ignored, seen, entries = [], [], set(), 0
    real_root = os.path.realpath(root)

    def refuse(error: OSError):
        raise PageError(f"cannot be read ({error.strerror})", path=_shown(display_path(Path(error.filename))))

    for folder, subfolders, files in os.walk(root, onerror=refuse, followlinks=True):
        info = os.stat(folder)
        if (info.st_dev, info.st_ino) in seen:
            raise PageError("leads back to a folder already read (a symlink loop or a second link to it)",
                            path=_shown(display_path(Path(folder))), hint=f"Remove the link from {shown}.")
        seen.add((info.st_dev, info.st_ino))
        subfolders[:] = [name for name in subfolders if not (name.startswith(".") or name in JUNK_FOLDERS)]
        depth = len(Path(folder).relative_to(root).parts)
        if subfolders and depth >= MAX_FOLDER_DEPTH:
            raise PageError(f"holds folders nested more than {MAX_FOLDER_DEPTH} deep "
                            f"({_shown(Path(folder, subfolders[0]).relative_to(root).as_posix())})", path=shown,
                            hint="Put the chapter's pages in one folder.")
        entries += len(subfolders) + len(files)
        if entries > MAX_FOLDER_ENTRIES:
            raise PageError(f"holds more than {MAX_FOLDER_ENTRIES:,} files and folders, more than mdupload reads",
                            path=shown, hint="Point `pages:` at one chapter's folder (a chapter has at most "
                                             f"{limits.FILES_PER_SESSION} pages).")
        for name in subfolders:
            _require_inside(Path(folder, name), real_root, root, shown)
        for name in files:
            path = Path(folder, name)
            rel = path.relative_to(root).as_posix()
            kind = _classify(rel)
            if kind == "page":
                _require_usable_name(rel, shown)
                _require_regular_file(path)
                pages.append((rel, path))
            elif kind != "junk":
                ignored.append((kind, _shown(rel)))
    _refuse_several_chapters([rel for rel, _path in pages], shown)
    return _sorted(pages), ignored


def _refuse_several_chapters(rels: list[str], shown: str) -> None:
    """Two or more sibling folders holding pages (at any depth) are most often several chapters: refused."""
    children: dict[tuple[str, ...], set[str]] = {}  # folder -> its sub-folders that hold pages
    for rel in rels:
        parts = tuple(rel.split("/")[:-1])
        for depth in range(len(parts)):
            children.setdefault(parts[:depth], set()).add(parts[depth])
    for folder, names in sorted(children.items(), key=lambda item: len(item[0])):
        if len(names) < 2:
            continue
        prefix = "".join(f"{part}/" for part in folder)
        listed = [_shown(f"{prefix}{name}/") for name in sorted(names, key=_natural_key)]
        shown_names = ", ".join(listed[:5]) + (f" and {len(listed) - 5} more" if len(listed) > 5 else "")
        raise PageError(f"holds {len(listed)} folders of pages ({shown_names}): most likely several chapters, "
                        "which mdupload never merges into one", path=shown,
                        hint="Make each folder its own chapter: its own folder or .cbz, listed as its own entry in "
                             "the manifest (or dropped into the inbox on its own). If they are parts of one chapter, "
                             "move all its pages into one folder.")


def _require_inside(folder: Path, real_root: str, root: Path, shown: str) -> None:
    """A linked folder must lead to a folder inside the chapter's folder."""
    if not folder.is_symlink():
        return
    target = os.path.realpath(folder)
    if os.path.commonpath([real_root, target]) != real_root:
        rel = _shown(folder.relative_to(root).as_posix())
        raise PageError(f"{rel} links to a folder outside it ({_shown(target)}); refused", path=shown,
                        hint="Copy the pages into the chapter's folder instead of linking a folder.")


_NOT_UTF8_TEXT = "is not UTF-8 (it was written in a legacy encoding such as Shift-JIS or Latin-1)"


def _unusable_characters(name: str) -> str | None:
    """What makes a (UTF-8) name unfit to be shown, recorded and sent to MangaDex, if anything."""
    if _CONTROL_CHARACTERS.search(name):
        return "holds control characters; refused"
    if _INVISIBLE_CHARACTERS.search(name):
        return "holds invisible characters that reorder or hide text; refused"
    return None


def _require_usable_name(rel: str, shown: str) -> None:
    """Page names are shown, recorded and sent to MangaDex: they must be UTF-8 without control characters."""
    if _NOT_UTF8.search(rel):
        raise PageError(f"the name of {_shown(rel)} {_NOT_UTF8_TEXT}", path=shown,
                        hint="Rename the file (and its folders) in UTF-8.")
    problem = _unusable_characters(rel)
    if problem:
        raise PageError(f"the name of {_shown(rel)} {problem}", path=shown, hint="Rename the file.")


def _shown(text: str) -> str:
    """A file system name made safe to print: bytes that are not UTF-8 and control characters escaped."""
    text = _NOT_UTF8.sub(lambda match: f"\\x{ord(match.group()) - 0xDC00:02x}", text)
    text = _CONTROL_CHARACTERS.sub(lambda match: ascii(match.group())[1:-1], text)
    return _INVISIBLE_CHARACTERS.sub(lambda match: ascii(match.group())[1:-1], text)


def _require_regular_file(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise PageError(f"cannot be read ({exc.strerror}; a broken link?)", path=_shown(display_path(path)),
                        hint="Replace it with the page file itself.") from None
    if not stat.S_ISREG(mode):
        raise PageError("is not a regular file (a device, a pipe or a socket)", path=_shown(display_path(path)),
                        hint="Replace it with the page file itself.")


def _extract(archive: Path, shown: str, workdir: Path) -> tuple[list[tuple[str, Path]], list[tuple[str, str]]]:
    """Like _scan_folder, the pages being extracted into a new folder inside `workdir`."""
    declared = _declared_entries(archive)
    if declared is not None and declared > MAX_MEMBERS:
        raise PageError(f"holds {declared:,} entries, more than the {MAX_MEMBERS:,} mdupload reads", path=shown,
                        hint="A chapter has at most 500 pages: split the archive.")
    with _open_zip(archive, shown) as bundle:
        members = bundle.infolist()
        if len(members) > MAX_MEMBERS:
            raise PageError(f"holds {len(members):,} entries, more than the {MAX_MEMBERS:,} mdupload reads",
                            path=shown, hint="A chapter has at most 500 pages: split the archive.")
        wanted, ignored, names = [], [], set()
        for member in members:
            rel = _member_path(member, shown)
            if rel is None:
                continue
            if rel in names:
                raise PageError(f"holds {rel} twice", path=shown, hint="Pack the archive again with each page once.")
            names.add(rel)
            kind = _classify(rel)
            if kind == "page":
                if member.flag_bits & _ZIP_ENCRYPTED_FLAG:
                    raise PageError(f"member {rel} is password-protected", path=shown,
                                    hint="Pack the pages again without a password (or extract them to a folder).")
                wanted.append((rel, member))
            elif kind != "junk":
                ignored.append((kind, rel))
        _refuse_several_chapters([rel for rel, _member in wanted], shown)
        workdir.mkdir(parents=True, exist_ok=True)
        target = Path(tempfile.mkdtemp(prefix="pages-", dir=workdir))
        pages, total = [], 0
        for number, (rel, member) in enumerate(_sorted(wanted), start=1):
            path = target / f"{number:04d}{PurePosixPath(rel).suffix.lower()}"
            total += _copy_member(bundle, member, rel, path, shown, MAX_ARCHIVE_BYTES - total)
            pages.append((rel, path))
    return pages, ignored


_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")


def _declared_entries(archive: Path) -> int | None:
    """The entry count the archive's end record claims, read before zipfile parses (and keeps in memory)
    every entry of the central directory; None when it cannot be read (zipfile then says what is wrong)."""
    try:
        with archive.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            tail_start = max(0, size - (_EOCD.size + 65_535))
            file.seek(tail_start)
            tail = file.read()
            at = tail.rfind(b"PK\x05\x06")
            if at < 0 or at + _EOCD.size > len(tail):
                return None
            entries = _EOCD.unpack_from(tail, at)[4]
            if entries != 0xFFFF:
                return entries
            locator_at = at - _ZIP64_LOCATOR.size  # a Zip64 archive: the count is in the Zip64 end record
            if locator_at < 0 or tail[locator_at:locator_at + 4] != b"PK\x06\x07":
                return None
            file.seek(_ZIP64_LOCATOR.unpack_from(tail, locator_at)[2])
            record = file.read(_ZIP64_EOCD.size)
            if len(record) != _ZIP64_EOCD.size or record[:4] != b"PK\x06\x06":
                return None
            return _ZIP64_EOCD.unpack(record)[7]
    except (OSError, struct.error):
        return None


def _open_zip(archive: Path, shown: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, EOFError, ValueError):
        with archive.open("rb") as file:
            head = file.read(8)
        if head.startswith(b"Rar!"):
            raise PageError("is a RAR archive, not a zip", path=shown,
                            hint="Extract it to a folder, or pack the pages again as .cbz/.zip.") from None
        raise PageError("is not a readable zip archive (truncated or damaged)", path=shown,
                        hint="Download or pack the archive again.") from None
    except OSError as exc:
        raise PageError(f"cannot be read ({exc.strerror})", path=shown) from None


def _member_path(member: zipfile.ZipInfo, shown: str) -> str | None:
    """The member's path inside the archive, refused when unsafe; None for a folder entry."""
    name = member.filename
    if not member.flag_bits & _ZIP_UTF8_FLAG:
        # Without the UTF-8 flag Python decodes names as cp437; many tools write UTF-8 anyway.
        try:
            raw = name.encode("cp437")
        except UnicodeEncodeError:  # the name came from a Unicode extra field
            raw = name.encode("utf-8")
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            shown_name = _quoted(raw.decode("utf-8", "backslashreplace"))
            raise PageError(f"member name {shown_name} {_NOT_UTF8_TEXT}", path=shown,
                            hint="Pack the archive again with a tool that writes UTF-8 names (7-Zip, Info-ZIP "
                                 "zip 3, or Python), or extract it to a folder.") from None
    problem = _unusable_characters(name)
    if problem:
        raise PageError(f"member name {_quoted(name)} {problem}", path=shown,
                        hint="The archive is unsafe or broken: pack the pages again.")
    unix = name.replace("\\", "/")
    if unix.startswith("/") or re.match(r"[A-Za-z]:", unix):
        raise PageError(f"member {_quoted(name)} has an absolute path; refused", path=shown,
                        hint="The archive is unsafe or broken: pack the pages again.")
    parts = [part for part in unix.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise PageError(f"member {_quoted(name)} points outside the archive ('..'); refused", path=shown,
                        hint="The archive is unsafe or broken: pack the pages again.")
    kind = stat.S_IFMT(member.external_attr >> 16)
    if kind == stat.S_IFLNK:
        raise PageError(f"member {_quoted(name)} is a symbolic link; refused", path=shown,
                        hint="Pack the page files themselves, not links to them.")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise PageError(f"member {_quoted(name)} is a device or special file; refused", path=shown,
                        hint="The archive is unsafe or broken: pack the pages again.")
    if not parts or kind == stat.S_IFDIR or name.endswith("/"):  # (ZipInfo.is_dir fails on an empty name)
        return None
    return "/".join(parts)


def _quoted(name: str) -> str:
    """The name in quotes, control characters escaped (a hostile name must not drive the terminal)."""
    return "'" + _shown(name) + "'"


def _copy_member(bundle: zipfile.ZipFile, member: zipfile.ZipInfo, rel: str, path: Path, shown: str,
                 room: int) -> int:
    """Stream one member to `path`, never writing past the bounds; returns the bytes written."""
    budget = min(MAX_MEMBER_BYTES, room)
    too_large = (f"member {rel} inflates past {budget / limits.MB:g} MB (MangaDex takes at most "
                 f"{limits.BYTES_PER_FILE / limits.MB:g} MB per page); refused as a possible zip bomb"
                 if budget == MAX_MEMBER_BYTES else
                 f"the pages inflate past {MAX_ARCHIVE_BYTES / limits.MB:g} MB in all at member {rel} (MangaDex "
                 f"takes at most {limits.BYTES_PER_SESSION / limits.MB:g} MB per chapter); refused")
    hint = "Check the archive; split the chapter or make the pages smaller."
    written = 0
    try:
        with bundle.open(member) as source, path.open("xb") as target:
            while chunk := source.read(CHUNK_BYTES):
                written += len(chunk)
                if written > budget:
                    raise PageError(too_large, path=shown, hint=hint)
                target.write(chunk)
    except PageError:
        path.unlink(missing_ok=True)
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
        path.unlink(missing_ok=True)
        raise PageError(f"member {rel} is damaged ({exc})", path=shown,
                        hint="Download or pack the archive again.") from None
    except NotImplementedError as exc:
        path.unlink(missing_ok=True)
        raise PageError(f"member {rel} cannot be read: {exc}", path=shown,
                        hint="Pack the archive again with ordinary Deflate compression (or extract it).") from None
    return written


def _upload_names(rels: list[str]) -> list[str]:
    """Unique names (ignoring case): the basename when it is unique, else prefixed with its folder path."""
    basenames = [PurePosixPath(rel).name for rel in rels]
    counts = Counter(name.casefold() for name in basenames)
    wanted = [name if counts[name.casefold()] == 1 else _prefixed(rel) for name, rel in zip(basenames, rels)]
    names, taken = [], set()
    for name in wanted:
        candidate, number = name, 2
        while candidate.casefold() in taken:  # two folder paths that sanitize alike
            stem = PurePosixPath(name)
            candidate = f"{stem.stem}-{number}{stem.suffix}"
            number += 1
        taken.add(candidate.casefold())
        names.append(candidate)
    return names


def _prefixed(rel: str) -> str:
    path = PurePosixPath(rel)
    folder = re.sub(r"[^\w.-]+", "_", path.parent.as_posix()) if path.parent.as_posix() != "." else ""
    return f"{folder}_{path.name}" if folder else path.name
