"""Data shipped inside the package: table contracts (``schemas/``), quality suites (``quality/``), analyst
queries (``analytics/``) and versioned rule sets (``rules/``). Read with :mod:`importlib.resources`, so a wheel or a ``--py-files`` zip carries them."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

KINDS = {"schemas": ".json", "quality": ".json", "analytics": ".sql", "rules": ".json"}


def folder(kind: str) -> Traversable:
    """The packaged folder of one kind of data."""
    if kind not in KINDS:
        raise KeyError(f"no packaged data '{kind}' (known: {', '.join(KINDS)})")
    return resources.files(__name__).joinpath(kind)


def names(kind: str) -> list[str]:
    """Names (without suffix) of every packaged file of one kind."""
    suffix = KINDS[kind]
    return sorted(p.name[: -len(suffix)] for p in folder(kind).iterdir() if p.name.endswith(suffix))


def read_text(kind: str, name: str) -> str:
    """The text of one packaged file; an unknown name is a KeyError that lists the known ones."""
    if name not in names(kind):
        raise KeyError(f"no {kind} entry '{name}' (known: {', '.join(names(kind))})")
    return folder(kind).joinpath(name + KINDS[kind]).read_text(encoding="utf-8")
