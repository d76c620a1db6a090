"""Params models as click options, and the plumbing every command shares: the store, one-line user errors."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

import click
from pydantic import BaseModel, ValidationError
from rich.console import Console

console = Console(stderr=False)
USER_ERRORS: tuple[type[BaseException], ...] = (FileNotFoundError,)


def open_cli_store(warehouse: str | None, backend: str | None, app_name: str, conf: dict | None = None):
    from taosr1.config import Settings
    from taosr1.io import open_store
    from taosr1.spark import get_spark

    settings = validated(Settings.from_env, warehouse=warehouse, table_backend=backend)
    spark = get_spark(app_name, conf=conf) if conf else get_spark(app_name)
    return spark, open_store(spark, settings)


def fail(message: object) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise SystemExit(2)


def validated(build: Callable[..., Any], **values: Any) -> Any:
    """Build a params model; a validation error becomes one line per bad option and exit 2."""
    try:
        return build(**values)
    except ValidationError as e:
        lines = [f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}" if err["loc"]
                 else err["msg"].removeprefix("Value error, ")  # a check across options names them itself
                 for err in e.errors()]
        fail("; ".join(lines))


def guarded(fn: Callable[[], Any]) -> Any:
    """Run a job; the project's own errors (bad input, failed gates, counts that do not add up) exit 2."""
    from taosr1.errors import Taosr1Error

    try:
        return fn()
    except (Taosr1Error, *USER_ERRORS) as e:
        fail(e)


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` → (X, True)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return inner[0], True
    return annotation, False


def params_options(model: type[BaseModel], skip: tuple[str, ...] = ()) -> list[click.Option]:
    """Click options for every field of a params model: Literal → choice, bool → --x/--no-x, dict → NAME=VALUE
    repeated; bounds are checked by the model itself."""
    opts = []
    for name, f in model.model_fields.items():
        if name in skip:
            continue
        kind, _ = _unwrap(f.annotation)
        flag = "--" + name.replace("_", "-")
        required = f.is_required()
        default = None if required else f.default
        common = dict(help=f.description, show_default=not required and default not in (None, {}),
                      required=required)
        if kind is bool:
            opts.append(click.Option([f"{flag}/--no-{name.replace('_', '-')}"], default=default, **common))
        elif typing.get_origin(kind) is typing.Literal:
            opts.append(click.Option([flag], type=click.Choice([str(v) for v in typing.get_args(kind)]),
                                     default=default, **common))
        elif typing.get_origin(kind) is dict or kind is dict:
            opts.append(click.Option([flag], multiple=True, metavar="NAME=VALUE", **common))
        else:
            ptype = {int: click.INT, float: click.FLOAT}.get(kind, click.STRING)
            opts.append(click.Option([flag], type=ptype, default=default, **common))
    return opts


def values_of(model: type[BaseModel], raw: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in raw.items():
        f = model.model_fields.get(name)
        if f is None:
            continue
        kind, _ = _unwrap(f.annotation)
        if typing.get_origin(kind) is dict or kind is dict:
            bad = [v for v in value if "=" not in v]
            if bad:
                fail(f"--{name.replace('_', '-')}: expected NAME=VALUE, got {bad[0]!r}")
            value = dict(v.split("=", 1) for v in value) if value else None
        if value is not None:
            out[name] = value
    return out


WAREHOUSE_OPTS = [
    click.Option(["--warehouse"], help="Warehouse root (default $TAOSR1_WAREHOUSE or ./warehouse)."),
    click.Option(["--backend"], type=click.Choice(["auto", "delta-rs", "delta-spark"]),
                 help="Delta backend (default $TAOSR1_TABLE_BACKEND or auto)."),
]


def with_options(opts: list[click.Option]) -> Callable:
    def deco(fn):
        fn.__click_params__ = list(reversed(opts)) + list(getattr(fn, "__click_params__", []))
        return fn

    return deco


