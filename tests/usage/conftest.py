"""Generated usage events for the rollup and selector tests (deterministic: seeded)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from enrs.usage.models import UsageEvent
from enrs.usage.services import actor_key

PARIS = ZoneInfo("Europe/Paris")
# Structure id -> (department, category, collège): fixed, as the directory would resolve them.
STRUCTURES = {
    1: ("35", "355", 1),
    2: ("35", "355", 1),
    3: ("35", "124", 4),
    4: ("29", "355", 1),
    5: ("29", "500", 7),
    6: ("56", "124", 4),
    7: ("22", "500", 2),
}
KINDS: dict[str, Callable[[random.Random], dict[str, Any]]] = {
    "auth.sign_in": lambda r: {"method": r.choice(["password", "cps", "psc"]), "role": "clinician"},
    "auth.sign_in_upgraded": lambda r: {"method": "otp", "role": "clinician"},
    "messagerie.message_sent": lambda r: {"box_kind": r.choice(["PER", "ORG"]), "cda": r.random() < 0.3},
    "messagerie.message_delivered": lambda r: {"channel": "smtp"},
    "messagerie.message_failed": lambda r: {"channel": "smtp"},
    "dmp.document_submitted": lambda r: {"type_code": r.choice(["11488-4", "34133-9"]), "source": "portal"},
    "dmp.document_accepted": lambda r: {"type_code": r.choice(["11488-4", "34133-9"]), "source": "portal"},
    "dmp.document_refused": lambda r: {"type_code": "11488-4", "source": "api"},
    "telemedecine.act_accepted": lambda r: {
        "act_type": "TLE",
        "urgency": False,
        "delay_s": r.randint(60, 9000),
    },
}


@dataclass(frozen=True)
class Ev:
    kind: str
    occurred_at: dt.datetime
    structure_id: int | None
    department: str
    category: str
    college: int | None
    actor: str
    value: float
    dims: dict[str, Any]

    @property
    def day(self) -> dt.date:
        return self.occurred_at.astimezone(PARIS).date()


def make_events(rng: random.Random, n: int, *, first: dt.date, days: int, actors: int = 40) -> list[Ev]:
    events = []
    kinds = list(KINDS)
    for _ in range(n):
        kind = rng.choice(kinds)
        structure = rng.choice([*STRUCTURES, None])
        department, category, college = (
            STRUCTURES.get(structure, ("", "", None)) if structure else ("", "", None)
        )
        day = first + dt.timedelta(days=rng.randrange(days))
        # Times spread over the whole local day, including late evening (UTC day != local day).
        local = dt.datetime.combine(day, dt.time(rng.randrange(24), rng.randrange(60)), tzinfo=PARIS)
        actor = actor_key(SimpleNamespace(pk=rng.randrange(actors), is_anonymous=False))
        value = float(rng.randint(1, 3)) if kind.endswith(("delivered", "failed")) else 1.0
        events.append(
            Ev(
                kind,
                local.astimezone(dt.UTC),
                structure,
                department,
                category,
                college,
                actor,
                value,
                KINDS[kind](rng),
            )
        )
    return events


def store(events: list[Ev]) -> None:
    UsageEvent.objects.bulk_create(
        [
            UsageEvent(
                kind=e.kind,
                occurred_at=e.occurred_at,
                structure_id=e.structure_id,
                department=e.department,
                category=e.category,
                college=e.college,
                actor_key=e.actor,
                value=e.value,
                dims=e.dims,
            )
            for e in events
        ],
        batch_size=2000,
    )


@pytest.fixture
def rng() -> random.Random:
    return random.Random(20261124)


@pytest.fixture
def no_rescan(settings: Any) -> None:
    """Only the id watermark decides what is new (the safety rescan would hide watermark bugs)."""
    settings.USAGE_ROLLUP_RESCAN_MINUTES = 0
