"""Settings files: a TOML file's option values and settings tables ([ae], [ae_train], [dit],
[dit_train], [sample], [distill]) read and checked, and any profile written back as such a file."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from ddream.config import REMOVED, RENAMED, SECTIONS, Profile
from ddream.config_rules import validate


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as data; one clear line for a missing or malformed file."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    from ddream.errors import BadInput

    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise BadInput(f"--config {path}: no such file") from None
    except IsADirectoryError:
        raise BadInput(f"--config {path} is a folder") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise BadInput(f"--config {path} is not valid TOML ({e})") from None
    return data


def split_tables(data: dict[str, Any], source: str) -> tuple[dict[str, Any], dict[str, dict]]:
    """A TOML document's top-level option keys, and its settings tables (checked by name)."""
    from ddream.errors import BadInput

    options = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    for name, values in tables.items():
        if name not in SECTIONS:
            raise BadInput(
                f"{source}: no settings table [{name}]; the tables are "
                + ", ".join(f"[{k}]" for k in SECTIONS)
            )
        # names and types now, whatever the command; the whole profile is validated when applied
        _fields(SECTIONS[name](), name, values, source)
    return options, tables


def apply_tables(profile: Profile, tables: dict[str, dict], source: str = "--config") -> Profile:
    """The profile with every [table] key set on its settings, each value checked against the
    field's type and the whole result validated."""

    changes = {}
    for section, values in tables.items():
        current = getattr(profile, section)
        changes[section] = dataclasses.replace(current, **_fields(current, section, values, source))
    result = dataclasses.replace(profile, **changes)
    for section in SECTIONS:
        validate(getattr(result, section))
    return result


def _fields(current: Any, section: str, values: dict[str, Any], source: str) -> dict[str, Any]:
    """A table's values, each named by a field of its dataclass and of that field's type."""
    from ddream.errors import BadInput

    known = [f.name for f in dataclasses.fields(current)]
    fields = {}
    for key, value in values.items():
        if key in RENAMED.get(section, {}):
            raise BadInput(f"{source}: [{section}] {key} is now {RENAMED[section][key]}")
        if key in REMOVED.get(section, {}):
            raise BadInput(
                f"{source}: [{section}] {key} was removed in 0.2.0 (measured and not kept); "
                "drop it from the file"
            )
        if key not in known:
            raise BadInput(
                f"{source}: [{section}] has no setting {key!r} (it has: {', '.join(known)})"
            )
        fields[key] = _coerce(getattr(current, key), value, f"{source}: [{section}] {key}")
    return fields


def _coerce(default: Any, value: Any, where: str) -> Any:
    """A file's value in the type of the field's default; one line when it cannot be."""
    from ddream.errors import BadInput

    kind = type(default)
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, tuple):
        whole = _whole_tuple(default)  # widths, block counts
        allowed = int if whole else (int, float)
        ok = isinstance(value, list) and all(
            isinstance(v, allowed) and not isinstance(v, bool) for v in value
        )
        if ok and default and not whole:
            value = [float(v) for v in value]
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, kind)
    if not ok:
        want = {
            bool: "true or false",
            int: "a whole number",
            float: "a number",
            tuple: "a list of whole numbers" if _whole_tuple(default) else "a list of numbers",
            str: "a string",
        }.get(kind, kind.__name__)
        raise BadInput(f"{where} = {value!r}: expected {want}")
    return value


def to_toml(profile: Profile, header: str = "") -> str:
    """The profile's settings as TOML tables that `--config` reads back to the same settings."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for section in SECTIONS:
        lines += ["", f"[{section}]"]
        for key, value in dataclasses.asdict(getattr(profile, section)).items():
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def _whole_tuple(default: Any) -> bool:
    """A tuple setting of whole numbers (widths, block counts), by its default."""
    return isinstance(default, tuple) and bool(default) and all(type(v) is int for v in default)
