"""Helpers every settings dataclass shares (the one home of "unknown setting" checks)."""

from __future__ import annotations

import dataclasses
from typing import Any

from mirage.featstore.errors import ConfigError


def check_known(cls, kwargs: dict[str, Any], what: str) -> None:
    """Raise ConfigError naming any key of ``kwargs`` that is not a field of the dataclass ``cls``."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise ConfigError(f"{what}: unknown setting(s) {unknown}; expected some of {sorted(names)}")


def check_int(value: Any, flag: str, *, minimum: int = 1, what: str = "a positive integer",
              allow_none: bool = False) -> None:
    """The one integer validator of the settings objects: ``value`` must be an int (not a bool)
    >= ``minimum``; raises ConfigError("FLAG: expected WHAT, got VALUE")."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{flag}: expected {what}, got {value!r}")


def config_or_keywords(cls, config, settings: dict[str, Any], *, what: str = "settings"):
    """An entry point's settings object: ``config`` itself, or ``cls.from_kwargs(**settings)``
    (the keyword convenience); both at once is refused, so a caller never wonders which won."""
    if config is None:
        return cls.from_kwargs(**settings)
    if settings:
        raise ConfigError(f"expected either config= or {what} as keywords, got both ({', '.join(sorted(settings))})")
    if not isinstance(config, cls):
        raise ConfigError(f"config: expected a {cls.__name__}, got {type(config).__name__}")
    return config


def setting(default: Any, help: str, *, flag: str | None = None, cli: bool = True, metavar: str | None = None,
            choices: tuple[str, ...] | None = None, cli_kind: str | None = None):
    """A settings-dataclass field that also describes its command-line option.

    ``help`` is the option's help text (the default is appended by the CLI, never repeated by
    hand); ``flag`` overrides the generated ``--field-name``; ``cli=False`` keeps a field off
    the command line (a library-only or expert knob); ``choices`` limits a str field;
    ``cli_kind="str"`` takes a structured field (e.g. a ``LO,HI`` pair) as text that the
    dataclass's own validation parses."""
    return dataclasses.field(default=default, metadata={"help": help, "flag": flag, "cli": cli, "metavar": metavar,
                                                        "choices": choices, "cli_kind": cli_kind})


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """What a CLI needs to build one option from a settings field (see :func:`option_specs`)."""

    name: str           # the field (and keyword) name
    flag: str           # e.g. "--lambda-mi"
    kind: str           # "float", "int", "bool" or "str"
    default: Any
    help: str
    metavar: str | None
    choices: tuple[str, ...] | None = None


_KINDS = {"float": "float", "int": "int", "bool": "bool", "str": "str"}
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def _base_kind(f: dataclasses.Field) -> str:
    return str(f.type).replace("Optional[", "").replace("]", "").split("|")[0].strip()


def parse_text(cls, name: str, text: str, *, flag: str) -> Any:
    """``text`` (a ``KEY=VALUE`` option's value) as the type of field ``name`` of ``cls``.

    A field that may be None takes ``none``/``null``; a name that is no field is returned as
    text (the dataclass's own check then names it). Raises ConfigError naming ``flag``."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        return text
    f, value = fields[name], str(text).strip()
    if value.lower() in ("none", "null") and ("None" in str(f.type) or f.default is None):
        return None
    kind = f.metadata.get("cli_kind") or _base_kind(f)
    try:
        if kind == "bool":
            if value.lower() not in _TRUE | _FALSE:
                raise ValueError(value)
            return value.lower() in _TRUE
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
    except ValueError:
        raise ConfigError(f"{flag} {name}: expected a{'n' if kind == 'int' else ''} {kind}, got {text!r}") from None
    return value


def option_specs(cls, *, exclude: tuple[str, ...] = ()) -> list[OptionSpec]:
    """One :class:`OptionSpec` per field of ``cls`` declared with :func:`setting` (``cli=True``)."""
    specs = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if "help" not in meta or not meta.get("cli", True) or f.name in exclude:
            continue
        base = meta.get("cli_kind") or _base_kind(f)
        if base not in _KINDS:
            raise TypeError(f"{cls.__name__}.{f.name}: expected a float, int, bool or str field for the CLI, got {f.type!r}")
        specs.append(OptionSpec(f.name, meta.get("flag") or "--" + f.name.replace("_", "-"), _KINDS[base],
                                f.default, meta["help"], meta.get("metavar"), meta.get("choices")))
    return specs
