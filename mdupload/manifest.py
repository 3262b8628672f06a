"""The YAML manifest: read it safely, validate it against its JSON Schema, apply defaults and overrides.

Every problem is a ManifestError naming the file, the line and the chapter, with a hint. The YAML is
composed into nodes (never constructed into Python objects by tag), so each value keeps the line it
came from and the text it was written as; anchors, aliases and tags other than YAML's plain types are
refused outright.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import stat
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from importlib import resources
from pathlib import Path

import jsonschema
import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.resolver import Resolver

try:  # libyaml's event parser, in PyYAML's wheels: about 7 times faster than the pure-Python one
    from yaml.cyaml import CParser as _Parser
except ImportError:  # PyYAML built without libyaml
    class _Parser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
        def __init__(self, stream):
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)

from .errors import ManifestError, UsageError
from .limits import (
    CHAPTER_MAX_LENGTH,
    CHAPTER_PATTERN,
    LANGUAGE_PATTERN,
    MAX_GROUPS,
    TITLE_MAX_LENGTH,
)
from .vocabulary import PRODUCTION_API, ChapterKey, chapter_label

MAX_BYTES = 256 * 1024  # 1,000 chapters take about 100 KB
MAX_DEPTH = 20  # the format nests 4 levels deep
PAGE_ARCHIVE_SUFFIXES = (".zip", ".cbz")

_YAML = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_YAML + name for name in ("str", "int", "float", "bool", "null", "timestamp")}
_TEXT_TAGS = {_YAML + "merge", _YAML + "value"}  # `<<` and `=`: YAML 1.1 specials, plain text here
_NUMBER_KEYS = ("chapter", "volume")  # a whole number written unquoted loses nothing: read as its text
_WHOLE_NUMBER = re.compile(r"0|[1-9][0-9]*")
# A mangadex.org address of a manga or group: the id is read from it (https://mangadex.org/title/<id>/<slug>).
_MANGADEX_URL = re.compile(r"(?:https?://)?(?:www\.)?mangadex\.org/(title|group|chapter|author)/([^/?#]*)"
                           r"(?:[/?#].*)?", re.IGNORECASE)

_KEY_HINTS = {
    "manga": "Add `manga: <id or URL>`: the manga's address, mangadex.org/title/<id>/..., or the id in it.",
    "groups": "Add `groups: [<group id>, ...]`, or `groups: []` to credit no group.",
    "language": "Add `language: en` (or the chapters' language code).",
    "chapters": "Add a `chapters:` list with one entry per chapter.",
    "chapter": 'Add `chapter: 1` (a decimal quoted: "12.5"), or `chapter: null` for a oneshot.',
    "pages": "Add `pages: <folder, .zip or .cbz>`, relative to the manifest file (~ and $VARIABLES work).",
}
_TYPE_NAMES = {"string": "text", "null": "null", "boolean": "true or false", "array": "a list",
               "object": "a mapping of `key: value` lines"}


@dataclass(frozen=True)
class ChapterSpec:
    chapter: str | None
    volume: str | None
    title: str | None
    language: str
    groups: tuple[str, ...]
    pages: Path
    publish_at: datetime | None
    fix: bool
    line: int
    replace: bool = False  # correct the published chapter in place when it changed (docs/identity.md)

    @property
    def label(self) -> str:
        """"chapter 1.5 (pt-br)", "vol 2 chapter 3 (en)", "oneshot (en)"."""
        return chapter_label(self.chapter, self.volume, self.language)


@dataclass(frozen=True)
class LanraragiSettings:
    """The manifest's `lanraragi:` section: where `mdupload archive` stores the chapters."""

    url: str | None
    category: str | None
    tags: tuple[str, ...]
    line: int  # where the section starts (for messages)
    category_line: int | None = None


@dataclass(frozen=True)
class Manifest:
    path: Path
    manga: str
    groups: tuple[str, ...]
    language: str
    terms_accepted: bool
    chapters: tuple[ChapterSpec, ...]
    lanraragi: LanraragiSettings | None = None
    warnings: tuple[str, ...] = ()  # what is valid but probably not meant (a publish_at in the past), with its line

    def select(self, numbers: Sequence[str]) -> list[ChapterSpec]:
        """The chapters whose number is among `numbers` ("oneshot" for a oneshot), in manifest order; [] = all."""
        if not numbers:
            return list(self.chapters)
        known = list(dict.fromkeys(_number_name(spec) for spec in self.chapters))
        unknown = [number for number in dict.fromkeys(numbers) if number not in known]
        if unknown:
            raise UsageError(f"{self.path} has no chapter {', '.join(unknown)}.",
                             hint=f"Its chapters are: {', '.join(known)}.")
        return [spec for spec in self.chapters if _number_name(spec) in numbers]

    def chapter_key(self, spec: ChapterSpec, api: str) -> ChapterKey:
        """What identifies the chapter on the MangaDex at `api` (vocabulary.ChapterKey, docs/identity.md)."""
        return ChapterKey.of(api=api, manga=self.manga, language=spec.language, groups=spec.groups,
                             volume=spec.volume, chapter=spec.chapter, title=spec.title)


def _number_name(spec: ChapterSpec) -> str:
    return "oneshot" if spec.chapter is None else spec.chapter


def load_manifest(path, environ: Mapping[str, str] | None = None) -> Manifest:
    """Read, validate and resolve the manifest at `path`; every problem is a ManifestError. `environ` holds
    the variables that `pages:` may name (the command passes the run's; none when not given)."""
    path = Path(path)
    return parse_manifest(_read_text(path), path, environ)


def parse_manifest(text: str, path: Path, environ: Mapping[str, str] | None = None) -> Manifest:
    """The manifest written as `text`; `path` names it in errors and anchors relative page paths."""
    path = Path(path)
    data, marks = _Document(text, path).load()
    error = _first_schema_error(data, marks, path)
    if error:
        raise error
    return _build(data, marks, path, environ or {})


def load_mapping(path, schema: str, start_hint: str) -> tuple[dict, Callable[[tuple], int]]:
    """A YAML file other than a manifest (a SERIES.yaml), read with the manifest's rules and errors.

    Validated against the package's `schema/<schema>.schema.json`; returns the values and a function
    giving the line where the value at a key path (e.g. `("pattern",)`) was written. `start_hint` is
    the hint when the file is empty or not a mapping.
    """
    path = Path(path)
    data, marks = _Document(_read_text(path), path, start_hint).load()
    error = _first_schema_error(data, marks, path, schema)
    if error:
        raise error
    return data, marks.line


# Reading the file -----------------------------------------------------------------------------------

def _read_text(path: Path) -> str:
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)  # non-blocking: opening a named pipe must not wait for a writer
    except FileNotFoundError:
        raise ManifestError("no such file.", path=path, hint="Check the path of the manifest.") from None
    except IsADirectoryError:
        raise _folder_error(path) from None
    except (OSError, ValueError) as exc:
        raise ManifestError(f"cannot open it: {getattr(exc, 'strerror', None) or exc}.", path=path,
                            hint="Check that the file exists and that you may read it.") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise _folder_error(path)
        if not stat.S_ISREG(mode):
            raise ManifestError("not a regular file (a device, pipe or socket).", path=path,
                                hint="Pass the path of a .yaml file.")
        with os.fdopen(fd, "rb", closefd=False) as stream:
            raw = stream.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ManifestError(f"cannot read it: {exc.strerror or exc}.", path=path,
                            hint="Check that the file is readable.") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_BYTES:
        raise ManifestError(f"larger than {MAX_BYTES // 1024} KB: this is not a manifest.", path=path,
                            hint="Pass the .yaml manifest, not a chapter or an archive.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ManifestError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x}).", path=path, line=line,
                            hint="Save the manifest as UTF-8.") from None


def _folder_error(path: Path) -> ManifestError:
    return ManifestError("is a folder, not a manifest file.", path=path,
                         hint="Pass the .yaml file, e.g. manifest.yaml inside that folder.")


# From YAML nodes to plain values ----------------------------------------------------------------------

class _RefusedNode(Exception):
    def __init__(self, message: str, mark, hint: str, where: tuple = ()):
        self.message, self.mark, self.hint, self.where = message, mark, hint, where


class _Loader(_Parser, Composer, Resolver):
    """YAML events composed into nodes in Python (never constructed by tag), node by node, so that anchors,
    aliases and deep nesting are refused before they cost anything."""

    get_single_node = Composer.get_single_node  # CParser would compose in C, past compose_node below
    compose_document = Composer.compose_document

    def __init__(self, stream):
        _Parser.__init__(self, stream)
        Composer.__init__(self)
        Resolver.__init__(self)
        self.depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, AliasEvent) or event.anchor is not None:
            raise _RefusedNode(
                "anchors and aliases (&name, *name) are not supported.", event.start_mark,
                "Write the value out; top-level `groups` and `language` already apply to every chapter.")
        if self.depth >= MAX_DEPTH:
            raise _RefusedNode(f"nested more than {MAX_DEPTH} levels deep.", event.start_mark,
                               "A manifest is a mapping with a list of chapters; check the brackets and indentation.")
        self.depth += 1
        try:
            return Composer.compose_node(self, parent, index)
        finally:
            self.depth -= 1


@dataclass
class _Marks:
    """Where each value was written: path (tuple of keys and indexes) -> line, the text of scalars as
    written, and how errors name each entry of `chapters`."""

    value_lines: dict
    key_lines: dict
    texts: dict
    chapter_names: dict

    def line(self, path: tuple) -> int:
        while path not in self.value_lines:
            path = path[:-1]
        return self.value_lines[path]

    def chapter(self, path: tuple) -> str | None:
        """The chapter that `path` is in: its number as written, "oneshot", or "#N" (None outside chapters)."""
        return self.chapter_names.get(path[1]) if path[:1] == ("chapters",) and len(path) > 1 else None


class _Document:
    def __init__(self, text: str, path: Path,
                 start_hint: str = "Start from manifests/example.yaml: manga, groups, language and chapters."):
        self.text, self.path, self.start_hint = text, path, start_hint
        self.marks = _Marks({}, {}, {}, {})

    def load(self) -> tuple[object, _Marks]:
        node = self._compose()
        if node is None:
            raise ManifestError("the file is empty.", path=self.path, line=1, hint=self.start_hint)
        if not isinstance(node, yaml.MappingNode):
            raise ManifestError("the top level must be a mapping of `key: value` lines.", path=self.path,
                                line=node.start_mark.line + 1, hint=self.start_hint)
        try:
            return self._value(node, ()), self.marks
        except _RefusedNode as refused:
            raise ManifestError(refused.message, path=self.path, line=refused.mark.line + 1,
                                chapter=self.marks.chapter(refused.where), hint=refused.hint) from None

    def _compose(self):
        loader = None
        try:
            loader = _Loader(self.text)  # the reader refuses non-printable characters right away
            return loader.get_single_node()
        except _RefusedNode as refused:
            raise self._error(refused.message, refused.mark, refused.hint) from None
        except yaml.reader.ReaderError as exc:
            line = self.text[:self.text.find(chr(exc.character))].count("\n") + 1
            raise ManifestError(f"the control character U+{exc.character:04X} is not allowed in YAML.", path=self.path,
                                line=line, hint="Remove it, or write it as an escape inside double quotes.") from None
        except UnicodeEncodeError as exc:  # libyaml's parser encodes the text: lone surrogates cannot be
            line = self.text[:exc.start].count("\n") + 1
            raise ManifestError("not valid Unicode text (a lone surrogate).", path=self.path, line=line,
                                hint="Save the manifest as UTF-8.") from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            hint = "Check the indentation and the quoting on this line and the one before."
            lines = self.text.splitlines()
            if mark and mark.line < len(lines) and "\t" in lines[mark.line]:
                hint = "YAML indents with spaces, not tabs: replace the tabs on this line."
            what = "; ".join(part for part in (exc.context, exc.problem) if part)
            if "nesting depth" in what:  # PyYAML >= 6.0.3 stops deep flow nesting in its own parser
                raise self._error(f"nested more than {MAX_DEPTH} levels deep.", mark,
                                  "A manifest is a mapping with a list of chapters; check the brackets and "
                                  "indentation.") from None
            raise self._error(f"not valid YAML: {what}.", mark, hint) from None
        finally:
            if loader is not None:
                loader.dispose()

    def _error(self, message: str, mark, hint: str) -> ManifestError:
        return ManifestError(message, path=self.path, line=mark.line + 1 if mark else None, hint=hint)

    def _value(self, node, path: tuple):
        self.marks.value_lines[path] = node.start_mark.line + 1
        if len(path) == 2 and path[0] == "chapters" and isinstance(path[1], int):
            self.marks.chapter_names[path[1]] = _entry_name(node, path[1])
        if isinstance(node, yaml.ScalarNode) and node.tag in _SCALAR_TAGS:
            self.marks.texts[path] = node.value
            value = _scalar(node, path)
            if _is_number_path(path) and isinstance(value, (int, float)) and not isinstance(value, bool):
                if type(value) is int and _WHOLE_NUMBER.fullmatch(node.value):
                    return node.value  # `chapter: 12` loses nothing
                message, hint = _unquoted_number(f"`{path[-1]}`", path[-1], node.value, value)
                raise _RefusedNode(message, node.start_mark, hint, path)
            return value
        if isinstance(node, yaml.SequenceNode) and node.tag == _YAML + "seq":
            return [self._value(item, path + (index,)) for index, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode) and node.tag == _YAML + "map":
            return self._mapping(node, path)
        if isinstance(node, yaml.ScalarNode) and node.tag in _TEXT_TAGS:
            self.marks.texts[path] = node.value
            return node.value
        tag = node.tag.replace(_YAML, "!!")
        raise _RefusedNode(f"the tag {_short(tag)} is not allowed.", node.start_mark,
                           "A manifest holds only text, numbers, true/false, null, lists and mappings: remove the tag.",
                           path)

    def _mapping(self, node, path: tuple) -> dict:
        result = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _SCALAR_TAGS | _TEXT_TAGS:
                raise _RefusedNode("a key must be a plain word.", key_node.start_mark,
                                   "Write keys as `name: value`, e.g. `title: The Beginning`.", path)
            key = key_node.value  # as written: `1:` or `yes:` is the key "1" or "yes", never a number or true
            if key in result:
                raise _RefusedNode(f"`{_short(key)}` is set twice in this mapping (first at line "
                                   f"{self.marks.key_lines[path + (key,)]}).", key_node.start_mark,
                                   "Keep one of them.", path)
            self.marks.key_lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = self._value(value_node, path + (key,))
        return result


def _is_number_path(path: tuple) -> bool:
    """A chapter's `chapter` or `volume`, or a series' `volume`."""
    return path == ("volume",) or (len(path) == 3 and path[0] == "chapters" and path[2] in _NUMBER_KEYS)


def _entry_name(node, index: int) -> str:
    """How errors name an entry of `chapters`: its `chapter` as written, "oneshot", or "#N"."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "chapter" and isinstance(value, yaml.ScalarNode):
                if value.tag == _YAML + "null":
                    return "oneshot"
                if value.value:
                    return _short(value.value, 20)
    return f"#{index + 1}"


_constructor = SafeConstructor()


def _scalar(node, path: tuple):
    """The plain value of a scalar, by YAML's resolved tag; timestamps stay text (ISO 8601) for the schema."""
    try:
        value = _constructor.yaml_constructors[node.tag](_constructor, node)
    except Exception:  # explicitly tagged text makes PyYAML fail in many ways: `!!bool maybe`, `!!timestamp soon`
        if node.tag == _YAML + "timestamp":
            return node.value  # e.g. 2026-13-45: not a date, reported as such by the schema or _publish_at
        raise _RefusedNode(f"cannot read the value {_short(node.value)!r}.", node.start_mark,
                           "Quote it if it is text.", path) from None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


# Schema validation ----------------------------------------------------------------------------------

def manifest_schema() -> dict:
    """The JSON Schema shipped in the package (identical to manifests/manifest.schema.json)."""
    return package_schema("manifest")


@cache
def package_schema(name: str) -> dict:
    """A JSON Schema shipped in the package: "manifest" or "series"."""
    return json.loads(resources.files("mdupload").joinpath(f"schema/{name}.schema.json").read_text("utf-8"))


@cache
def _validator(schema: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(package_schema(schema))


def _first_schema_error(data, marks: _Marks, path: Path, schema: str = "manifest") -> ManifestError | None:
    """The first problem in the file; an unknown key beats the "missing key" it causes (a typo)."""
    errors = list(_validator(schema).iter_errors(data))
    with_unknown = {tuple(error.absolute_path) for error in errors if error.validator == "additionalProperties"}
    explained = [_explain(error, marks, path) for error in errors
                 if not (error.validator == "required" and tuple(error.absolute_path) in with_unknown)]
    first = min(explained, key=lambda explanation: (explanation[1].line, -len(explanation[0])), default=None)
    return first[1] if first else None


def _explain(error: jsonschema.ValidationError, marks: _Marks, path: Path) -> tuple[tuple, ManifestError]:
    """The error where a user would look for it, in their words, with the path of the value it is about."""
    where = tuple(error.absolute_path)
    line = marks.line(where)
    key = next((part for part in reversed(where) if isinstance(part, str)), None)
    name = f"`{key}`" if key else "the manifest"
    if where and isinstance(where[-1], int):
        name = f"item {where[-1] + 1} of `{key}`"
    if len(where) == 2 and where[0] == "groups_by_name":  # a series file's map: group name -> id
        key, name = "groups", f"the id of {_short(where[1])!r} in `groups_by_name`"
    message, hint = error.message + ".", "Compare with manifests/README.md."
    instance = error.instance
    kind = error.validator

    if kind == "additionalProperties":
        extra = sorted(set(instance) - set(error.schema.get("properties", {})),
                       key=lambda unknown: marks.key_lines[where + (unknown,)])[0]
        line = marks.key_lines[where + (extra,)]
        message, hint = f"unknown key `{_short(extra)}`.", _unknown_key_hint(extra, error.schema, where)
    elif kind == "required":
        missing = next(required for required in error.validator_value if required not in instance)
        entry = "a chapter" if where else "the manifest"
        message, hint = f"{entry} has no `{missing}`.", _KEY_HINTS.get(missing, "Add it.")
    elif kind == "type":
        message, hint = _type_error(name, key, error, marks.texts.get(where))
    elif kind == "pattern":
        message, hint = _pattern_error(name, key, marks.texts.get(where, instance))
    elif kind == "minLength":
        message = f"{name} is empty."
        hint = {"chapter": "Write `chapter: null` for a oneshot.",
                "volume": "Leave `volume` out when there is no volume."}.get(
            key, "Name a folder, .zip or .cbz, relative to the manifest file.")
    elif kind == "maxLength":
        limit = TITLE_MAX_LENGTH if key == "title" else CHAPTER_MAX_LENGTH
        message = f"{name} is {len(instance)} characters long; MangaDex allows at most {limit}."
        hint = "Shorten it."
    elif kind == "maxItems":
        message = f"{name} lists {len(instance)} groups; MangaDex credits at most {MAX_GROUPS}."
        hint = f"Keep at most {MAX_GROUPS} group ids."
    elif kind == "uniqueItems":
        repeated = next(item for index, item in enumerate(instance) if item in instance[:index])
        message, hint = f"{name} lists {_short(repeated)} twice.", "Keep one of them."
    elif kind == "minItems":
        message, hint = f"{name} is empty.", "List at least one chapter."

    return where, ManifestError(message, path=path, line=line, chapter=marks.chapter(where), hint=hint)


def _unknown_key_hint(extra: str, schema: dict, where: tuple) -> str:
    chapter_keys = manifest_schema()["$defs"]["chapter"]["properties"]
    if where == () and "chapters" in schema["properties"] and extra in chapter_keys:
        return f"`{extra}` is set per chapter: move it into an entry of `chapters`."
    if len(where) == 2 and where[0] == "chapters" and extra in manifest_schema()["properties"]:
        return f"`{extra}` is set once, at the top of the manifest: move it there."
    known = list(schema["properties"])
    close = difflib.get_close_matches(extra.lower(), known, n=1, cutoff=0.6)
    if close:
        return f"Did you mean `{close[0]}`?"
    return f"The keys here are: {', '.join(known)}."


def _type_error(name: str, key: str | None, error, text: str | None) -> tuple[str, str]:
    expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
    wanted = " or ".join(_TYPE_NAMES.get(t, t) for t in expected)
    instance = error.instance
    if instance is None:
        return f"{name} has no value.", _KEY_HINTS.get(key, f"Give {name} a value, or leave the key out.")
    if key == "publish_at_from_name":
        return (f"{name} must name the time zone of the dates in item names, not {_short(repr(instance))}.",
                "Write `publish_at_from_name: UTC`, an offset such as +09:00, or a zone name such as Asia/Tokyo.")
    if "string" in expected and text is not None and not isinstance(instance, str):
        return _unquoted_number(name, key, text, instance, wanted)
    if expected == ["boolean"]:
        return f"{name} must be true or false, not {_short(repr(instance))}.", f"Write `{key}: true` or `{key}: false`."
    if expected == ["array"] and text is not None:
        return (f"{name} must be a list, not {_short(repr(instance))}.",
                f"Write it in brackets: `{key}: [{_short(text)}]`.")
    kind = {dict: "a mapping", list: "a list"}.get(type(instance)) or _short(repr(instance))
    return f"{name} must be {wanted}, not {kind}.", "Compare with manifests/README.md and manifests/example.yaml."


def _unquoted_number(name: str, key: str | None, text: str, value, wanted: str = "text or null") -> tuple[str, str]:
    """YAML read `text` as a number or true/false: the message and the quoted form to write."""
    kind = "true/false" if isinstance(value, bool) else "a number"
    quoted, why = text, ""
    if key in _NUMBER_KEYS and kind == "a number":
        why = " Whole numbers such as 12 may stay unquoted; decimals and other forms need quotes."
        without_zeros = re.sub(r"^0+(?=\d)", "", text.strip())
        quoted = without_zeros if re.match(CHAPTER_PATTERN, without_zeros) else text
    written = f'{key}: "{_short(quoted)}"' if key and name == f"`{key}`" else f'"{_short(quoted)}"'
    return (f"{name} must be {wanted}, but YAML reads {_short(text)} as {kind} ({_short(value)}), losing how "
            f"it was written.{why}", f"Quote it: write {written}.")


def _short(value, limit: int = 60) -> str:
    """A value as shown in a message: repr for non-text, cut to `limit` characters."""
    shown = value if isinstance(value, str) else repr(value)
    return shown if len(shown) <= limit else shown[:limit - 3] + "..."


def _pattern_error(name: str, key: str | None, instance: str) -> tuple[str, str]:
    if key in ("manga", "groups"):
        return _id_error(name, "title" if key == "manga" else "group", instance)
    if key == "language":
        hint = "Use two lowercase letters, optionally a region: en, pt-br, es-la, zh-hk."
        suggestion = instance.strip().lower().replace("_", "-")
        if re.match(LANGUAGE_PATTERN, suggestion):
            hint = f"Write `{key}: {suggestion}`."
        return f"{name} {_short(instance)!r} is not a MangaDex language code.", hint
    if key in ("chapter", "volume"):
        hint = 'Write it as MangaDex does: "1", "12.5", "10a" (no leading zero, lowercase letter).'
        suggestion = re.sub(r"^0+(?=\d)", "", instance.strip().lower())
        if suggestion != instance and re.match(CHAPTER_PATTERN, suggestion):
            hint = f'Write `{key}: "{suggestion}"`.'
        return f"{name} {_short(instance)!r} is not a number MangaDex accepts.", hint
    if key == "publish_at":
        if _NAIVE_DATE_TIME.fullmatch(instance.strip()):
            try:
                return _zone_missing(name, instance.strip())
            except ValueError:  # 2026-02-30 18:00: not a date at all
                pass
        return (f"{name} {_short(instance)!r} is not a date and time.",
                "Write it as YYYY-MM-DDTHH:MM:SSZ, e.g. 2026-12-24T12:00:00Z (UTC) or with an offset like +02:00.")
    return f"{name} {_short(instance)!r} does not have the expected form.", "Compare with manifests/README.md."


def _id_error(name: str, kind: str, instance: str) -> tuple[str, str]:
    """`kind` is what the value names on mangadex.org: "title" (a manga) or "group"."""
    wanted = {"title": "the manga's", "group": "the group's"}[kind]
    hint = (f"Copy {wanted} address from mangadex.org (mangadex.org/{kind}/<id>/...), or the id in it, "
            "e.g. f9c33607-9180-4ba6-b85c-e4b5faee7192.")
    url = _MANGADEX_URL.fullmatch(instance.strip())
    if url and url.group(1).lower() != kind:
        return f"{name} is the address of a {url.group(1).lower()}, not of a {kind}: {_short(instance)!r}.", hint
    if url and url.group(2).isdigit():
        return (f"{name} is an old MangaDex address with a numeric id: {_short(instance)!r}.",
                f"MangaDex ids are UUIDs since 2021: open the {kind} on mangadex.org and copy its address.")
    return f"{name} is not a MangaDex id or {kind} address: {_short(instance)!r}.", hint


def mangadex_id(written: str) -> str:
    """The id in lowercase, from an id or a mangadex.org address (validated by the schema beforehand)."""
    url = _MANGADEX_URL.fullmatch(written.strip())
    return (url.group(2) if url else written.strip()).lower()


_NAIVE_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?")


def in_utc_and_local(moment: datetime) -> str:
    """A moment as UTC and as this computer's local time: "2026-12-24 18:00 UTC (19:00 CET, +01:00 here)"."""
    utc = moment.astimezone(UTC)
    local = moment.astimezone()
    if not local.utcoffset():
        return f"{utc:%Y-%m-%d %H:%M} UTC (the local time here)"
    day = "" if local.date() == utc.date() else f"{local:%Y-%m-%d} "
    return f"{utc:%Y-%m-%d %H:%M} UTC ({day}{local:%H:%M} {local.tzname()}, {_offset(local)} here)"


def _offset(moment: datetime) -> str:
    return moment.isoformat()[-6:] if moment.utcoffset() else "+00:00"


def _zone_missing(name: str, written: str) -> tuple[str, str]:
    """Both readings of a date and time written without a zone; ValueError when it is no date at all."""
    naive = datetime.fromisoformat(written)
    as_utc, as_local = naive.replace(tzinfo=UTC), naive.astimezone()
    if as_local.utcoffset():
        readings = (f"Read as UTC it is {in_utc_and_local(as_utc)}; read as this computer's local time "
                    f"({as_local.tzname()}, {_offset(as_local)}) it is {in_utc_and_local(as_local)}.")
    else:
        readings = (f"This computer's local time is UTC, so here it would be {as_utc:%Y-%m-%d %H:%M} UTC, but the "
                    "same manifest means another moment on a computer in another zone.")
    return (f"{name} {written} has no time zone. {readings}",
            f"Say which: `publish_at: {as_utc:%Y-%m-%dT%H:%M:%S}Z` (UTC) or "
            f"`publish_at: {as_local:%Y-%m-%dT%H:%M:%S}{_offset(as_local)}` (that offset).")


# From validated values to the dataclasses ------------------------------------------------------------

def _build(data: dict, marks: _Marks, path: Path, environ: Mapping[str, str]) -> Manifest:
    base = Path(os.path.abspath(path)).parent
    language = data["language"]
    groups = _groups(data["groups"], ("groups",), marks, path, None)
    chapters, warnings = [], []
    seen: dict[tuple, int] = {}
    for index, entry in enumerate(data["chapters"]):
        where = ("chapters", index)
        name = marks.chapter(where)
        line = marks.value_lines[where]
        spec = ChapterSpec(
            chapter=entry["chapter"],
            volume=entry.get("volume"),
            title=entry.get("title"),
            language=entry.get("language", language),
            groups=_groups(entry["groups"], where + ("groups",), marks, path, name) if "groups" in entry else groups,
            pages=_pages(entry["pages"], base, marks.value_lines[where + ("pages",)], path, name, environ),
            publish_at=_publish_at(entry, marks, where, path, name, warnings),
            fix=entry.get("fix", False),
            line=line,
            replace=entry.get("replace", False),
        )
        # One manifest is one manga, published to one API: the other parts of the key tell its chapters apart.
        identity = ChapterKey.of(api=PRODUCTION_API, manga="", language=spec.language, groups=spec.groups,
                                 volume=spec.volume, chapter=spec.chapter, title=spec.title)
        same = seen.setdefault(identity, line)
        if same != line:
            raise ManifestError(f"{identity.label} is listed twice, at lines {same} and {line}.",
                                path=path, line=line, chapter=name, hint=_SAME_RELEASE_HINT)
        chapters.append(spec)
    return Manifest(path=path, manga=mangadex_id(data["manga"]), groups=groups, language=language,
                    terms_accepted=data.get("terms_accepted", False), chapters=tuple(chapters),
                    lanraragi=_lanraragi(data, marks), warnings=tuple(warnings))


_SAME_RELEASE_HINT = ("Remove one. Two entries are one chapter when their language, groups (in any order), volume "
                      "and number are the same, and for oneshots (`chapter: null`) their title too: give them "
                      "another volume, number or title (docs/identity.md).")


def _lanraragi(data: dict, marks: _Marks) -> LanraragiSettings | None:
    section = data.get("lanraragi")
    if section is None:
        return None
    return LanraragiSettings(url=section.get("url"), category=section.get("category"),
                             tags=tuple(section.get("tags", ())), line=marks.line(("lanraragi",)),
                             category_line=marks.value_lines.get(("lanraragi", "category")))


def _groups(ids: list, where: tuple, marks: _Marks, path: Path, chapter: str | None) -> tuple[str, ...]:
    lowered = [mangadex_id(group) for group in ids]
    for index, group in enumerate(lowered):
        if group in lowered[:index]:
            raise ManifestError(f"`groups` lists {group} twice (in other letter cases).", path=path,
                                line=marks.value_lines[where + (index,)], chapter=chapter, hint="Keep one of them.")
    return tuple(lowered)


def _pages(written: str, base: Path, line: int, path: Path, chapter: str, environ: Mapping[str, str]) -> Path:
    pages = Path(os.path.abspath(base / _expanded(written, line, path, chapter, environ)))
    try:
        mode = os.stat(pages).st_mode
    except FileNotFoundError:
        raise ManifestError(f"`pages`: {written} does not exist (looked for {pages}).", path=path, line=line,
                            chapter=chapter, hint=f"Pages are relative to the manifest's folder, {base}.") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ManifestError(f"`pages`: cannot use {_short(written)!r}: {reason}.", path=path, line=line,
                            chapter=chapter, hint="Name a folder, .zip or .cbz that you may read.") from None
    if not stat.S_ISDIR(mode) and not (stat.S_ISREG(mode) and pages.suffix.lower() in PAGE_ARCHIVE_SUFFIXES):
        raise ManifestError(f"`pages`: {written} is neither a folder nor a .zip or .cbz file.", path=path,
                            line=line, chapter=chapter,
                            hint="Point `pages` at the chapter's folder of images or at its .zip/.cbz archive.")
    return pages


def _expanded(written: str, line: int, path: Path, chapter: str, environ: Mapping[str, str]) -> str:
    """`pages` with $NAME / ${NAME} replaced from `environ` ($$ is a $) and a leading ~ expanded."""
    try:
        text = string.Template(written).substitute(environ)
    except KeyError as exc:
        raise ManifestError(f"`pages`: the environment variable ${exc.args[0]} in {_short(written)!r} is not set.",
                            path=path, line=line, chapter=chapter,
                            hint="Set it where mdupload runs, or write the path out. A $ in a folder name is "
                                 "written $$.") from None
    except ValueError:
        raise ManifestError(f"`pages`: {_short(written)!r} has a $ that starts no variable name.", path=path,
                            line=line, chapter=chapter,
                            hint="Write a variable as $NAME or ${NAME}, and a $ in a folder name as $$.") from None
    if written.startswith("~"):
        text = os.path.expanduser(text)
        if text.startswith("~"):
            raise ManifestError(f"`pages`: cannot tell which home folder {_short(written)!r} means.", path=path,
                                line=line, chapter=chapter,
                                hint="Write the path out, or use ~/... with HOME set (~name/... for another user).")
    return text


def _publish_at(entry: dict, marks: _Marks, where: tuple, path: Path, chapter: str,
                warnings: list[str]) -> datetime | None:
    if "publish_at" not in entry:
        return None
    line = marks.value_lines[where + ("publish_at",)]
    try:
        written = re.sub(r"[Zz]$", "+00:00", entry["publish_at"].strip())  # Python 3.11 reads only "Z"
        moment = datetime.fromisoformat(written).astimezone(UTC)  # the schema wants a zone
    except (ValueError, OverflowError):
        raise ManifestError(f"`publish_at` {_short(entry['publish_at'])!r} is not a date and time.", path=path,
                            line=line, chapter=chapter,
                            hint="Write it as YYYY-MM-DDTHH:MM:SSZ, e.g. 2026-12-24T12:00:00Z.") from None
    if moment <= datetime.now(UTC):
        warnings.append(str(ManifestError(
            f"`publish_at` {in_utc_and_local(moment)} is in the past, so it schedules nothing.", path=path,
            line=line, chapter=chapter, hint="MangaDex publishes the chapter as soon as it is processed; to "
                                             "schedule it, give a later date.")))
    return moment
