# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""One command-line front-end for every tool, over :mod:`ove_ros.typed_config`.

A tool declares its options once, as a dataclass of ``setting(...)`` fields (defaults, help, choices,
ranges), and ``parse`` turns argv into a checked instance of it:

- ``key=value``: dotted keys, values in YAML (``tasks=[a,b]``, ``output=null``);
- ``config=<yaml>`` where the tool reads its options from a file (then the overrides on top);
- bare arguments fill the fields the tool takes by position (the main job's mode, a bag path);
- ``-h``/``--help`` prints every key with its default and description;
- the older ``--some-flag value``, ``--some-flag=value``, ``--flag`` and ``--no-flag`` spellings become
  ``some_flag=value`` / ``flag=true`` / ``flag=false``, and one line on stderr names the new spelling, so
  commands written for the earlier flag parsers keep working.

Every problem is a ``ConfigError`` naming the key and what is allowed; ``parse_or_exit`` prints it as one
line and exits with status 2.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import types
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from ove_ros import typed_config
from ove_ros.typed_config import ConfigError

T = TypeVar("T")

USAGE_ERROR = 2  # exit status of a command line the tool cannot use
REQUIRED = "???"  # the default of a setting the user must give (OmegaConf's mandatory value)
_OVERRIDE = re.compile(r"^[A-Za-z_]\w*(\.\w+)*=")
_PLAIN = re.compile(r"^[^,\[\]{}#&*!|>'\"%@`:\s][^,\[\]{}#&*!|>'\"%@`]*$")
_NUMBER = re.compile(r"^-\d")
_BOOL = ("bool", "")


def _kind(hint: Any) -> tuple[str, str]:
    """``(kind, item kind)`` of a field's annotation: ``bool``, ``str`` (str or Path), ``list``, ``other``."""
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else Any
    if hint is bool:
        return "bool", ""
    if isinstance(hint, type) and issubclass(hint, (str, Path)):
        return "str", ""
    origin = get_origin(hint)
    if origin in (list, tuple, Sequence) or (isinstance(origin, type) and issubclass(origin, Sequence)):
        inner = [a for a in get_args(hint) if a is not Ellipsis]
        return "list", _kind(inner[0])[0] if inner else "other"
    return "other", ""


def _kinds(cls: type | None) -> dict[str, tuple[str, str]]:
    """The top-level keys of ``cls`` with their kinds (nested dataclasses: ``other``)."""
    if cls is None:
        return {}
    hints = get_type_hints(cls)
    return {f.metadata.get("key", f.name): _kind(hints.get(f.name)) for f in fields(cls)}


def _scalars(cls: type) -> set[str]:
    """The top-level keys of ``cls`` that hold one value (no ``key.sub`` below them)."""
    hints = get_type_hints(cls)
    found = set()
    for f in fields(cls):
        hint = hints.get(f.name)
        if get_origin(hint) in (Union, types.UnionType):
            hint = next((a for a in get_args(hint) if a is not type(None)), hint)
        if _kind(hint)[0] in ("str", "bool") or hint in (int, float):
            found.add(f.metadata.get("key", f.name))
    return found


def _scalar(text: str) -> str:
    """``text`` as a YAML string: as written where YAML reads it back unchanged, else double-quoted."""
    try:
        same = _PLAIN.match(text) is not None and yaml.safe_load(text) == text
    except yaml.YAMLError:
        same = False
    return text if same else json.dumps(text)


def _value(kind: tuple[str, str], values: Sequence[str]) -> str:
    """A flag's value(s) as the YAML of a ``key=value`` (a string flag stays a string: ``--task null``)."""
    main, item = kind
    if main == "list":
        return "[" + ",".join(_scalar(v) if item == "str" else v for v in values) + "]"
    return _scalar(values[0]) if main == "str" else values[0]


def is_override(arg: str) -> bool:
    """Whether ``arg`` is a ``key=value`` (a path with an ``=`` in a folder name is not)."""
    return _OVERRIDE.match(arg) is not None


def _is_flag(arg: str) -> bool:
    return arg.startswith("-") and arg != "-" and not _NUMBER.match(arg)


class _Reader:
    """One pass over argv: sorts each argument into the tool's overrides, the pass-through list, the config
    file, and remembers the older spellings it translated."""

    def __init__(self, cls: type, positional: Sequence[str], renamed: Mapping[str, str],
                 switches: Mapping[str, str], config_file: bool, rest: str | None, rest_cls: type | None):
        self.kinds = _kinds(cls)
        self.scalars = _scalars(cls)
        self.rest_kinds = _kinds(rest_cls)
        self.positional, self.renamed, self.switches = list(positional), dict(renamed), dict(switches)
        self.config_file, self.rest = config_file, rest
        self.overrides: list[str] = []
        self.passed: list[str] = []
        self.config: str | None = None
        self.old: list[str] = []
        self.new: list[str] = []

    def own(self, key: str) -> bool:
        """Whether ``key`` is the tool's: its top-level key, or below one of its groups (a dotted key under a
        one-value setting belongs to the pass-through, e.g. the main job's ``data`` and training's
        ``data.batch_size``)."""
        top = key.split(".")[0]
        return top in self.kinds and (top == key or top not in self.scalars or self.rest is None)

    def kind(self, key: str) -> tuple[str, str] | None:
        """The kind of the value ``key`` takes, or None for a key no one reads."""
        top = key.split(".")[0]
        if self.own(key):
            table = self.kinds
        elif self.rest is not None and (top in self.rest_kinds or not self.rest_kinds):
            table = self.rest_kinds  # without a declared class the pass-through takes any key
        else:
            return None
        return table.get(top, ("other", "")) if top == key else ("other", "")

    def add(self, item: str) -> None:
        key, _, value = item.partition("=")
        if self.config_file and key == "config":
            self.config = value
        elif self.own(key) or self.rest is None:
            self.overrides.append(item)
        else:
            self.passed.append(item)

    def legacy(self, old: Sequence[str], new: str) -> None:
        self.old.append(" ".join(shlex.quote(a) for a in old))
        self.new.append(shlex.quote(new))
        self.add(new)

    def flag(self, arg: str, args: list[str]) -> None:
        name, eq, inline = arg[2:].partition("=")
        if arg in self.switches and not eq:
            self.legacy([arg], self.switches[arg])
            return
        key = self.renamed.get(name.replace("-", "_"), name.replace("-", "_"))
        kind, negate = self.kind(key), False
        base = self.renamed.get(key[3:], key[3:])
        if key.startswith("no_") and not eq and key not in self.kinds and self.kind(base) == _BOOL:
            key, kind, negate = base, _BOOL, True
        if kind is None or arg.startswith("---"):
            raise ConfigError(f"unknown option {arg!r}; {self.known()}")
        old = [arg]
        if kind[0] == "bool" and not eq:
            values = ["false" if negate else "true"]
        elif eq:
            values = [inline]
        elif kind[0] == "list":
            values = []
            while args and not _is_flag(args[0]) and not is_override(args[0]):
                values.append(args.pop(0))
            if not values:
                raise ConfigError(f"{arg} needs at least one value (or write {key}=[a,b])")
            old += values
        else:
            if not args or _is_flag(args[0]):
                raise ConfigError(f"{arg} needs a value (or write {key}=<value>)")
            values = [args.pop(0)]
            old += values
        self.legacy(old, f"{key}={_value(kind, values)}")

    def bare(self, arg: str, args: list[str], taken: int) -> int:
        if taken >= len(self.positional):
            raise ConfigError(f"unexpected argument {arg!r}; {self.known()}")
        key = self.positional[taken]
        kind = self.kinds[key]
        values = [arg]
        if kind[0] == "list":
            while args and not _is_flag(args[0]) and not is_override(args[0]):
                values.append(args.pop(0))
        self.add(f"{key}={_value(kind, values)}")
        return taken + 1

    def known(self) -> str:
        keys = ", ".join(self.kinds)
        where = f"; positional: {', '.join(self.positional)}" if self.positional else ""
        return f"write key=value with one of the keys {keys}{where} (see --help)"

    def read(self, argv: Sequence[str]) -> None:
        args, taken = list(argv), 0
        while args:
            arg = args.pop(0)
            if arg == "--":
                if self.rest is None:
                    raise ConfigError(f"this tool takes no overrides after '--'; {self.known()}")
                self.passed.extend(args)
                return
            if is_override(arg):
                key, _, value = arg.partition("=")
                top, dot, tail = key.partition(".")
                if top in self.renamed:
                    self.legacy([arg], f"{self.renamed[top]}{dot}{tail}={value}")
                else:
                    self.add(arg)
            elif arg.startswith("--") and len(arg) > 2:
                self.flag(arg, args)
            elif _is_flag(arg):
                raise ConfigError(f"unknown option {arg!r}; {self.known()}")
            else:
                taken = self.bare(arg, args, taken)


def help_page(
    cls: type,
    usage: str,
    intro: str = "",
    *,
    positional: Sequence[str] = (),
    renamed: Mapping[str, str] | None = None,
    switches: Mapping[str, str] | None = None,
    rest_cls: type | None = None,
    rest_help: str = "",
) -> str:
    """``typed_config.help_text`` of ``cls`` (every key, its default and description), then the keys passed
    on to ``rest_cls`` and the older spellings still read."""
    parts = [typed_config.help_text(cls, usage, intro)]
    if positional:
        parts.append("\nbare arguments fill, in order: " + ", ".join(positional))
    if rest_cls is not None:
        parts.append("\n" + typed_config.help_text(rest_cls, rest_help or "other keys:"))
    elif rest_help:
        parts.append("\n" + rest_help)
    old = ["--some-key value or --some-key=value for some_key=value", "--flag for flag=true",
           "--no-flag for flag=false"]
    old += [f"--{a.replace('_', '-')} for {b}=..." for a, b in (renamed or {}).items()]
    old += [f"{a} for {b}" for a, b in (switches or {}).items()]
    parts.append("\nolder spellings, still read (deprecated): " + "; ".join(old))
    return "\n".join(parts)


def parse(
    cls: type[T],
    argv: Sequence[str] | None,
    usage: str,
    intro: str = "",
    *,
    positional: Sequence[str] = (),
    renamed: Mapping[str, str] | None = None,
    switches: Mapping[str, str] | None = None,
    config_file: bool = False,
    rest: str | None = None,
    rest_cls: type | None = None,
    rest_help: str = "",
    what: str = "options",
    example: str = "key=value",
    stderr: IO[str] | None = None,
) -> T:
    """argv (``sys.argv[1:]`` when None) -> a checked ``cls``.

    ``positional``: the fields bare arguments fill, in order (a list field takes the rest of them).
    ``renamed``: older names -> keys (``{"rate": "live_rate_hz"}`` reads ``--rate 2`` and ``rate=2``).
    ``switches``: older valueless flags -> an override (``{"--no-cache": "use_cache=false"}``).
    ``config_file``: read ``config=<yaml>`` as the file under the overrides. ``rest``: a list field that
    collects the ``key=value`` whose key ``cls`` lacks (and everything after ``--``), for a config the tool
    passes them on to (``rest_cls``, whose keys ``--help`` lists too). ``--help`` prints the help page and
    exits 0; every problem raises ``ConfigError``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(help_page(cls, usage, intro, positional=positional, renamed=renamed, switches=switches,
                        rest_cls=rest_cls, rest_help=rest_help))
        raise SystemExit(0)
    reader = _Reader(cls, positional, renamed or {}, switches or {}, config_file, rest, rest_cls)
    reader.read(args)
    _say_deprecated(reader.old, reader.new, stderr)
    if reader.config is None:
        given = {o.partition("=")[0].split(".")[0] for o in reader.overrides}
        for f in fields(cls):  # type: ignore[arg-type]
            key = f.metadata.get("key", f.name)
            if f.default == REQUIRED and key not in given:
                how = f" (or as bare argument {positional.index(key) + 1})" if key in positional else ""
                raise ConfigError(f"{key} is required: write {key}=<value>{how} (see --help)")
    obj = typed_config.load(cls, reader.config, reader.overrides, what=what, example=example)
    if rest is not None and reader.passed:
        current = getattr(obj, rest)
        setattr(obj, rest, type(current)([*current, *reader.passed]))
    return typed_config.check(obj, what)


def legacy_flags(argv: Sequence[str], flags: Mapping[str, str], stderr: IO[str] | None = None) -> list[str]:
    """``argv`` with the older ``--flag value`` / ``--flag=value`` of ``flags`` (flag -> dotted key) as
    ``key=value`` (a string) and one deprecation line naming them; every other argument unchanged. For a
    tool whose own loader reads the ``key=value`` arguments."""
    args, out, old, new = list(argv), [], [], []
    while args:
        arg = args.pop(0)
        flag, eq, inline = arg.partition("=")
        if flag not in flags:
            out.append(arg)
            continue
        if not eq:
            if not args or _is_flag(args[0]):
                raise ConfigError(f"{flag} needs a value (or write {flags[flag]}=<value>)")
            inline = args.pop(0)
        item = f"{flags[flag]}={_scalar(inline)}"
        old.append(shlex.join([arg] if eq else [flag, inline]))
        new.append(shlex.quote(item))
        out.append(item)
    _say_deprecated(old, new, stderr)
    return out


def _say_deprecated(old: Sequence[str], new: Sequence[str], stderr: IO[str] | None) -> None:
    """The one stderr line naming the older spellings read and what to write instead (none: nothing)."""
    if old:
        print(f"deprecated: {' '.join(old)}; write instead: {' '.join(new)}", file=stderr or sys.stderr)


def fail(exc: BaseException | str, stderr: IO[str] | None = None) -> NoReturn:
    """One line ``error: <message>`` on stderr, exit status 2 (no traceback: the message says it all)."""
    print(f"error: {exc}", file=stderr or sys.stderr)
    raise SystemExit(USAGE_ERROR)


def parse_or_exit(cls: type[T], argv: Sequence[str] | None, usage: str, intro: str = "", **options: Any) -> T:
    """``parse``, ending the process with ``fail`` on a ``ConfigError``."""
    try:
        return parse(cls, argv, usage, intro, **options)
    except ConfigError as exc:
        fail(exc)

