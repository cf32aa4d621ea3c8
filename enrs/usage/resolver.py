"""What the usage core needs to know about structures, without importing the directory app.

``annuaire`` registers a :class:`StructureDirectory` at ``AppConfig.ready`` (dependency inversion: the core
never imports ``annuaire``). Without one (an install without the directory), events simply carry no
department / category / collège unless the caller gives them, and labels fall back to the codes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class StructureContext:
    department: str = ""
    category: str = ""
    college: int | None = None


class StructureDirectory(Protocol):
    def context(self, structure_id: int) -> StructureContext | None:
        """Department, category code and GCS collège of a structure (None if unknown)."""
        ...

    def structure_labels(self, structure_ids: Iterable[int]) -> dict[int, str]: ...

    def department_labels(self) -> dict[str, str]: ...

    def category_labels(self) -> dict[str, str]: ...

    def college_labels(self) -> dict[int, str]: ...


_directory: StructureDirectory | None = None


def register_structure_directory(directory: StructureDirectory | None) -> None:
    """Install (or, with None, remove) the directory the usage core asks about structures."""
    global _directory
    _directory = directory


def structure_directory() -> StructureDirectory | None:
    return _directory


def resolve_structure(structure_id: int | None) -> StructureContext | None:
    if structure_id is None or _directory is None:
        return None
    return _directory.context(structure_id)


def structure_labels(structure_ids: Iterable[int]) -> dict[int, str]:
    ids = list(structure_ids)
    return _directory.structure_labels(ids) if _directory is not None and ids else {}


def department_labels() -> dict[str, str]:
    return _directory.department_labels() if _directory is not None else {}


def category_labels() -> dict[str, str]:
    return _directory.category_labels() if _directory is not None else {}


def college_labels() -> dict[int, str]:
    return _directory.college_labels() if _directory is not None else {}
