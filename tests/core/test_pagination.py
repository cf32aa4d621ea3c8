"""Previous/next pagination without counting."""

import pytest
from django.test import RequestFactory

from enrs.core.pagination import page_number, page_of


@pytest.mark.parametrize(
    ("query", "expected"),
    [("", 1), ("page=3", 3), ("page=0", 1), ("page=-4", 1), ("page=x", 1), ("page=99999", 10)],
)
def test_page_number_is_clamped(rf: RequestFactory, query: str, expected: int) -> None:
    assert page_number(rf.get(f"/?{query}"), max_page=10) == expected


def test_page_of_reads_one_row_more_to_know_about_the_next_page() -> None:
    rows = list(range(25))
    first, context = page_of(rows, page=1, size=10)
    assert first == list(range(10))
    assert context == {"page": 1, "has_previous": False, "has_next": True, "previous_page": 0, "next_page": 2}
    last, context = page_of(rows, page=3, size=10)
    assert last == list(range(20, 25))
    assert (context["has_previous"], context["has_next"]) == (True, False)
    exact, context = page_of(list(range(20)), page=2, size=10)
    assert exact == list(range(10, 20))
    assert context["has_next"] is False
