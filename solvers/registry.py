"""Find solvers: the entry-point group `captcha_bench.solvers` (built-ins too) or "module:attr".

`available()` imports nothing; `load()` imports one solver and constructs it; `describe()`
imports each one to ask, through its optional `check()`, whether it can run here.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from captchas import plugins
from captchas.errors import UserError
from solvers import base

GROUP = "captcha_bench.solvers"


class SolverError(UserError):
    """An unknown, broken or misconfigured solver; the message names the fix."""


@dataclass(frozen=True)
class SolverInfo:
    """One line of `captcha-bench solvers`."""

    name: str
    target: str  # module:attr
    origin: str  # distribution and version that registered it
    problem: str | None  # why it cannot run here; None when it can


def available() -> dict[str, importlib.metadata.EntryPoint]:
    """Installed solvers by name; imports nothing."""
    return plugins.installed(GROUP)


def resolve(name: str) -> Any:
    """The solver class (or factory) for an entry-point name or a "module:attr" string."""
    return plugins.find(GROUP, name, "solver", SolverError)


def problem(name: str) -> str | None:
    """Why `name` cannot run here (from its optional check()), or None."""
    try:
        cls = resolve(name)
    except SolverError as e:
        return str(e)
    try:
        return base.can_run(cls)
    except Exception as e:
        return f"check() failed: {type(e).__name__}: {e}"


def load(name: str, **options: Any) -> Any:
    """Construct a solver; bad options and failed set-up become SolverError."""
    cls = resolve(name)
    reason = problem(name)
    if reason:
        raise SolverError(f"solver {name!r} cannot run here: {reason}")
    try:
        solver = cls(**options)
    except TypeError as e:
        raise SolverError(f"solver {name!r} rejected its options ({e}): check -o KEY=VALUE") from None
    except ValueError as e:
        raise SolverError(f"solver {name!r}: {e}") from None
    if not callable(getattr(solver, "solve", None)):
        raise SolverError(f"solver {name!r} has no solve(batch) method: see solvers/base.py")
    return solver


def describe(progress: Callable[[int, int], None] | None = None) -> list[SolverInfo]:
    """Every installed solver, where it comes from, and whether it can run here (importing each: seconds)."""
    infos = []
    found = sorted(available().items())
    for done, (name, ep) in enumerate(found):
        if progress:
            progress(done, len(found))
        dist = ep.dist
        origin = f"{dist.name} {dist.version}" if dist is not None else "unknown"
        infos.append(SolverInfo(name=name, target=ep.value, origin=origin, problem=problem(name)))
    if progress:
        progress(len(found), len(found))
    return infos


def check_options(name: str, options: dict[str, Any]) -> None:
    """Raise SolverError for an unknown solver or an option its constructor does not take."""
    import inspect

    target = resolve(name)
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return  # no signature to check against: the constructor will say
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    valid = [p for p in parameters if p != "self"]
    for option in options:
        if option not in parameters:
            raise SolverError(
                f"solver {name!r} has no option {option!r}: its options are {', '.join(valid) or '(none)'}"
            )


def accepts(name: str, option: str) -> bool:
    """Whether the solver's constructor takes `option` (by name or through **kwargs)."""
    import inspect

    try:
        parameters = inspect.signature(resolve(name)).parameters
    except (SolverError, TypeError, ValueError):
        return False
    return option in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def default_solvers() -> list[str]:
    """Every installed solver that can run here, less those that opt out (baselines)."""
    names = []
    for name in sorted(available()):
        try:
            cls = resolve(name)
        except SolverError:
            continue
        if base.in_default_run(cls) and problem(name) is None:
            names.append(name)
    return names
