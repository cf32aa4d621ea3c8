"""Value-set checks for the DMP double: the ENRS generated tables when present, else built-in ones."""

from __future__ import annotations

import functools
import importlib
from typing import Any

from .constants import BUILTIN_CODES

_USE_MODULE = True


def use_builtin_tables(flag: bool) -> None:
    """Force the short built-in tables (`--codes builtin`), e.g. to not depend on the ENRS package."""
    global _USE_MODULE
    _USE_MODULE = not flag
    _module_table.cache_clear()


@functools.cache
def _valuesets_module() -> Any:
    try:
        return importlib.import_module("enrs.standards.valuesets")
    except Exception:
        return None


@functools.cache
def _module_table(name: str) -> frozenset[tuple[str, str]] | None:
    module = _valuesets_module() if _USE_MODULE else None
    if module is None:
        return None
    try:
        table = module.codes(name)
    except Exception:
        return None
    return frozenset((c.code, c.system) for c in table.values())


def source() -> str:
    return "enrs.standards.valuesets" if _USE_MODULE and _valuesets_module() is not None else "built-in"


def is_known(valueset: str, code: str, system: str) -> bool:
    table = _module_table(valueset)
    if table is None:
        return (code, system) in BUILTIN_CODES.get(valueset, set())
    return (code, system) in table


def expected_class_for_type(type_code: str) -> str | None:
    """The classCode the ENRS mapping derives from `type_code`, or None when it cannot say."""
    module = _valuesets_module() if _USE_MODULE else None
    if module is None:
        return None
    try:
        return str(module.class_for_type(type_code).code)
    except Exception:
        return None
