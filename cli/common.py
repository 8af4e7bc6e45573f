"""What every command shares: error translation, logging, option types."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys

import click

from mirage.featstore.errors import MirageError


def run(fn, *args, **kwargs):
    """Call a library function; a MirageError (or a plain OS error) becomes a one-line message, exit 1.

    The command's ``--out`` folder (if it has one) is checked first, so a regular file there is
    refused before any work is done."""
    try:
        _check_out_param()
        return fn(*args, **kwargs)
    except MirageError as exc:
        raise click.ClickException(one_line(str(exc))) from None
    except (FileExistsError, NotADirectoryError) as exc:  # a regular file where a folder belongs
        raise click.ClickException(f"{exc.filename or ''}: expected a folder (or a new path), got a regular file "
                                   f"({exc.strerror or exc}); choose another path".lstrip(": ")) from None
    except OSError as exc:  # FileNotFoundError, PermissionError, IsADirectoryError, a full disk ...
        raise click.ClickException(one_line(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))) from None
    except KeyboardInterrupt:
        click.echo("interrupted; rerun the same command to resume", err=True)
        sys.exit(130)


def _check_out_param() -> None:
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.meta.get("mirage.out_checked"):
        return
    ctx.meta["mirage.out_checked"] = True
    out = ctx.params.get("out")
    if isinstance(out, (str, os.PathLike)) and str(out):
        from mirage.featstore.store.location import check_out_dir

        check_out_dir(str(out))


def one_line(text: str) -> str:
    """A message as one line (the CLI promises one-line errors)."""
    return " ".join(str(text).split()) or "failed"


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    # distributed configures its own INFO-level loggers when first imported (and in every
    # worker process); its dask config, read from the environment, keeps them quiet below -vv.
    if verbose < 2:
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    logging.getLogger("distributed").setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)


def verbosity_option(fn):
    @click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
    @functools.wraps(fn)
    def wrapper(*args, verbose: int = 0, **kwargs):
        setup_logging(verbose)
        return fn(*args, **kwargs)

    return wrapper


class JsonDict(click.ParamType):
    """A JSON object given on the command line (e.g. --storage-options)."""

    name = "json"

    def convert(self, value, param, ctx):
        if isinstance(value, dict):
            return value
        try:
            out = json.loads(value)
        except ValueError:
            out = None
        if not isinstance(out, dict):
            self.fail(f"expected a JSON object such as '{{\"anon\": false}}', got {value!r}", param, ctx)
        return out


storage_options_option = click.option(
    "--storage-options", type=JsonDict(), default=None,
    help='fsspec options for remote URLs as JSON, e.g. \'{"client_kwargs": {"endpoint_url": "http://..."}}\'; '
         'keys that are URL prefixes ("s3://bucket") hold options for the URLs below them only.')


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


class LayerChoice(click.ParamType):
    """A hidden-layer index, or one of the given words (e.g. ``all``)."""

    name = "layer"

    def __init__(self, *words: str):
        self.words = words

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text in self.words:
            return text
        try:
            return int(text)
        except ValueError:
            self.fail(f"expected a layer index or one of {', '.join(self.words)}, got {value!r}", param, ctx)


_CLICK_TYPES = {"float": float, "int": int, "str": str}


def settings_options(cls, *, exclude: tuple[str, ...] = ()):
    """Click options generated from a settings dataclass's fields (``featstore.settings.setting``).

    Every option defaults to "not given", so the dataclass stays the one home of each default;
    the help text shows the dataclass's default. Use :func:`given_settings` to pass on only the
    options the user gave."""
    from mirage.featstore.settings import option_specs

    specs = option_specs(cls, exclude=exclude)

    def decorate(fn):
        for spec in reversed(specs):
            shown = "" if spec.default is None else f" [default: {_shown(spec.default)}]"
            if spec.kind == "bool":
                no = "--no-" + spec.flag[2:]
                fn = click.option(f"{spec.flag}/{no}", spec.name, default=None, help=spec.help + shown)(fn)
            else:
                kind = click.Choice(list(spec.choices)) if spec.choices else _CLICK_TYPES[spec.kind]
                fn = click.option(spec.flag, spec.name, type=kind, default=None, metavar=spec.metavar,
                                  help=spec.help + shown)(fn)
        return fn

    return decorate


def given_settings(options: dict, cls) -> tuple[dict, dict]:
    """Split a command's ``options`` into (the fields of ``cls`` the user gave, every non-field option).

    Options left at "not given" are dropped, so the dataclass's own default applies."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    ctx = click.get_current_context(silent=True)

    def given(k: str, v) -> bool:
        if v is None:
            return False
        return ctx is None or ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT

    settings = {k: v for k, v in options.items() if k in names and given(k, v)}
    return settings, {k: v for k, v in options.items() if k not in names}


def _shown(value) -> str:
    return "on" if value is True else "off" if value is False else str(value)
