# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""One typed-configuration mechanism for the command-line tools: dataclasses whose fields carry their
description, allowed values and range, read from a YAML file plus dotted ``key=value`` overrides.

One error type, ``ConfigError``, for every configuration problem of every tool (the training tools, the bag
converter, the checkpoint converter, the node's parameters), so one ``except`` catches them all. This module
imports neither ROS nor torch; OmegaConf is imported only when a file or overrides are loaded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING as DC_MISSING
from dataclasses import field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar, get_args, get_type_hints

T = TypeVar("T")


class UserError(Exception):
    """A problem the user can fix; the message says what and how (the tools print it without a traceback)."""


class ConfigError(UserError, ValueError):
    """A configuration value, file or override that names the key at fault and what is allowed."""


def setting(
    default: Any,
    help: str,
    *,
    choices: Sequence[Any] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    key: str | None = None,
    **extra: Any,
) -> Any:
    """A dataclass field with its default, description (``--help``) and allowed values or range (``check``;
    for a list, of each entry). ``key``: the name users write when it is not the field's (a ROS parameter's
    dotted name); ``extra``: more metadata for the caller. Lists and dicts become default factories (a fresh
    copy per instance)."""
    meta: dict[str, Any] = {"help": help, **extra}
    if key is not None:
        meta["key"] = key
    if choices is not None:
        meta["choices"] = tuple(choices)
    for name, bound in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)):
        if bound is not None:
            meta[name] = bound
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _default(f: Any) -> Any:
    if f.default_factory is not DC_MISSING:
        return f.default_factory()
    return f.default


def _constraint_text(meta: Any) -> str:
    if "choices" in meta:
        return "one of " + ", ".join(json.dumps(c) for c in meta["choices"])
    low = next(((b, meta[k]) for k, b in (("ge", "["), ("gt", "(")) if k in meta), None)
    high = next(((b, meta[k]) for k, b in (("le", "]"), ("lt", ")")) if k in meta), None)
    if low and high:
        return f"in {low[0]}{low[1]}, {high[1]}{high[0]}"
    symbols = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))
    return " and ".join(f"{sym} {meta[k]}" for k, sym in symbols if k in meta)


def _allowed(value: Any, meta: Any) -> bool:
    """Whether ``value`` is one of the declared choices and inside the declared range (NaN is not)."""
    if "choices" in meta:
        return value in meta["choices"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True  # types are checked when the config loads
    return not (("gt" in meta and not value > meta["gt"]) or ("ge" in meta and not value >= meta["ge"])
                or ("lt" in meta and not value < meta["lt"]) or ("le" in meta and not value <= meta["le"]))


def _nested(hint: Any) -> tuple[type | None, bool]:
    """The dataclass inside an ``X | None`` or ``list[X]`` annotation, and whether it is a list."""
    for arg in get_args(hint):
        if isinstance(arg, type) and is_dataclass(arg):
            return arg, getattr(hint, "__origin__", None) is list
    return None, False


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """``(key, default, help)`` of every field, nested dataclasses flattened to dotted keys (list items as
    ``<key>.<i>.``, optional groups under their own name); the help names the allowed values or range where
    the field declares them."""
    rows: list[tuple[str, str, str]] = []
    hints = get_type_hints(cls)
    for f in fields(cls):
        key = prefix + f.metadata.get("key", f.name)
        default = _default(f)
        if is_dataclass(default):
            rows.extend(describe(type(default), key + "."))
            continue
        inner, is_list = _nested(hints.get(f.name))
        if inner is not None:
            text = f.metadata.get("help", "")
            rows.append((key, json.dumps(default), text))
            rows.extend(describe(inner, key + (".<i>." if is_list else ".")))
            continue
        shown = "???" if default is DC_MISSING or repr(default) == "'???'" else json.dumps(default)
        text = f.metadata.get("help", "")
        allowed = _constraint_text(f.metadata)
        if allowed:
            text = f"{text} ({allowed})" if text else allowed
        rows.append((key, shown, text))
    return rows


def help_text(cls: type, usage: str, intro: str = "") -> str:
    """A ``--help`` page: the usage line, then every key with its default and description."""
    lines = [usage]
    if intro:
        lines.append(intro)
    lines.append("\nkeys (key=value; nested keys are dotted, list items by index):")
    rows = describe(cls)
    width = max((len(k) for k, _, _ in rows), default=0)
    for key, default, text in rows:
        lines.append(f"  {key:{width}s}  {default:>14s}  {text}")
    return "\n".join(lines)


def problems(obj: Any, prefix: str = "") -> list[str]:
    """Every declared choice or range that ``obj`` (a dataclass instance, nested ones included) breaks, as
    ``<key> must be ..., got <value>`` (``<key> entries must be ...`` for a list). ``None`` passes (optional
    settings)."""
    found: list[str] = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        key = prefix + f.metadata.get("key", f.name)
        if is_dataclass(value):
            found.extend(problems(value, key + "."))
            continue
        meta = f.metadata
        if value is None:
            continue
        rule = f"one of {meta['choices']}" if "choices" in meta else _constraint_text(meta)
        if isinstance(value, (list, tuple)):
            bad = [v for v in value if not _allowed(v, meta)]
            if bad:
                found.append(f"{key} entries must be {rule}, got {bad}")
        elif not _allowed(value, meta):
            found.append(f"{key} must be {rule}, got {value!r}")
    return found


def check(obj: T, what: str = "configuration") -> T:
    """``obj`` unchanged, or ``ConfigError`` listing every broken choice or range."""
    found = problems(obj)
    if found:
        raise ConfigError(f"invalid {what}: " + "; ".join(found))
    return obj


def from_mapping(cls: type[T], data: Any, what: str | None = None) -> T:
    """``cls(**data)`` for a plain mapping (a stored config, a bundle's JSON): unknown keys and broken
    choices or ranges raise ``ConfigError`` naming them and what is allowed."""
    what = what or cls.__name__
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{what}: unknown keys {unknown}; expected a subset of {sorted(known)}")
    return check(cls(**dict(data)), what)


def split_override(item: str, example: str) -> tuple[str, str]:
    """``key=value`` -> ``(key, value)``; anything else is an error that shows ``example``."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} is not of the form key=value (e.g. {example})")
    return key.strip(), value


def _known_keys(exc: Exception) -> str:
    """For an unknown key: the keys its group does have."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    group = getattr(exc, "object_type", None)
    if not isinstance(exc, (ConfigKeyError, ConfigAttributeError)) or not is_dataclass(group):
        return ""
    return f"; the keys there are: {', '.join(f.name for f in fields(group))}"


def _group(cls: type, key: str) -> type | None:
    """The dataclass of the group of keys at the dotted ``key`` of ``cls`` (None for a value or a list)."""
    node: type | None = cls
    for part in key.split("."):
        f = next((f for f in fields(node) if f.name == part), None) if node else None
        if f is None:
            return None
        default = _default(f)
        inner, is_list = _nested(get_type_hints(node).get(f.name))
        node = type(default) if is_dataclass(default) else None if is_list else inner
    return node


def _respelled(
    pairs: Sequence[tuple[str, Any]], rename: Callable[[str], str], source: str
) -> list[tuple[str, Any]]:
    """``(key, value)`` pairs under the keys' own names; one key given under two spellings is an error."""
    seen: dict[str, str] = {}
    for key, _ in pairs:
        own = rename(key)
        if seen.setdefault(own, key) != key:
            raise ConfigError(f"{source} sets {own} twice (as {seen[own]} and {key}); keep one")
    return [(rename(key), value) for key, value in pairs]


def _leaves(
    cls: type, tree: Mapping[str, Any], rename: Callable[[str], str], prefix: str = ""
) -> list[tuple[str, Any]]:
    """``(dotted key, value)`` of every value of ``tree``, descending only into groups of keys (a dict-typed
    setting such as free-form overrides stays one value)."""
    out: list[tuple[str, Any]] = []
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping) and _group(cls, rename(key)) is not None:
            out.extend(_leaves(cls, value, rename, key + "."))
        else:
            out.append((key, value))
    return out


def _respelled_tree(cls: type, tree: Mapping[str, Any], rename: Callable[[str], str], source: str) -> dict:
    out: dict[str, Any] = {}
    for key, value in _respelled(_leaves(cls, tree, rename), rename, source):
        node = out
        *groups, last = key.split(".")
        for part in groups:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{source}: {key} is inside {part}, which is set to a value")
        node[last] = value
    return out


def _is_plain_mapping(cfg: Any, key: str) -> bool:
    """True when ``key`` holds a free-form mapping (a dict-typed field), not a group of declared keys."""
    from omegaconf import DictConfig, OmegaConf

    node = OmegaConf.select(cfg, key, throw_on_missing=False)
    return isinstance(node, DictConfig) and OmegaConf.get_type(node) is dict


def load(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    what: str = "configuration",
    example: str = "key=value",
    data: Mapping[str, Any] | str | None = None,
    rename: Callable[[str], str] | None = None,
) -> T:
    """Defaults of ``cls`` <- the YAML file at ``path`` (or ``data``: a mapping or YAML text, e.g. a stored
    config) <- dotted ``key=value`` overrides (values in YAML syntax: ``video.resize=[320,240]``,
    ``task=null``; ``key={a: 1}`` replaces a mapping, ``key.a=1`` sets one of its entries). Unknown keys and
    wrong types raise ``ConfigError`` naming the key; declared choices and
    ranges are not checked here (``check``), so a caller can fill in derived values first.

    ``rename``: a key's own dotted name for another accepted spelling (an older name); a file, mapping or
    command line that sets one key under two spellings is an error."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    source = str(path) if path is not None else what if data is not None else "defaults"
    try:
        cfg = OmegaConf.structured(cls)
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise ConfigError(f"config file {path} does not exist")
            data = OmegaConf.load(path)
        elif isinstance(data, str):
            data = OmegaConf.create(data)
        if not isinstance(data, Mapping | None):
            raise ConfigError(f"{source} must hold a mapping of keys (key: value), not a list or a value")
        data = OmegaConf.to_container(OmegaConf.create(data or {}), resolve=False)
        if rename is not None:
            data = _respelled_tree(cls, data, rename, source)
        cfg = OmegaConf.merge(cfg, data)
        pairs = [split_override(item, example) for item in overrides]
        for key, value in _respelled(pairs, rename, "the command line") if rename else pairs:
            parsed = yaml.safe_load(value) if value.lstrip().startswith("{") else None
            if isinstance(parsed, dict) and _is_plain_mapping(cfg, key):
                OmegaConf.update(cfg, key, parsed, merge=False)  # key={...} sets it; key.sub=v one entry
            else:
                cfg.merge_with_dotlist([f"{key}={value}"])  # the value parsed as OmegaConf parses YAML
        return OmegaConf.to_object(cfg)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        detail = " ".join(str(exc).split())  # OmegaConf's message spans lines
        raise ConfigError(f"invalid {what} ({source}): {detail}{_known_keys(exc)}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse YAML ({source}): {exc}") from None
