"""Plugins are found one way: an entry-point group, or a "module:attr" string (no install needed).

Used by the scheme registry (captchas/schemes.py) and the solver registry (solvers/registry.py).
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterable
from typing import Any


def installed(group: str) -> dict[str, importlib.metadata.EntryPoint]:
    """Installed plugins of a group by name; imports nothing."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=group)}


def find(group: str, name: str, kind: str, error: type[Exception], also: Iterable[str] = ()) -> Any:
    """Import the object a plugin name or "module:attr" string points to.

    Failures raise `error` with one line naming the `kind` ("scheme", "solver") and the choices;
    `also` adds names that are valid without being installed.
    """
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as e:
            raise error(f"cannot load {kind} {name!r}: {e}") from None
        return obj
    eps = installed(group)
    if name not in eps:
        names = ", ".join(sorted(set(eps) | set(also))) or "(none installed)"
        raise error(f"unknown {kind} {name!r}: choose one of {names}, or give module:attr")
    try:
        return eps[name].load()
    except Exception as e:  # a broken plugin must not take the CLI down with a traceback
        raise error(f"{kind} {name!r} failed to load: {type(e).__name__}: {e}") from None
