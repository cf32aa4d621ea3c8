"""Previous / next pagination without a total: one row more than a page says whether a next page exists,
so a list of millions of rows is never counted. Pairs with the template `core/_pagination.html`."""

from typing import Any

from django.http import HttpRequest

MAX_PAGE = 10_000


def page_number(request: HttpRequest, *, max_page: int = MAX_PAGE) -> int:
    """The `page` query parameter, clamped to 1..max_page (anything unreadable is page 1)."""
    try:
        page = int(request.GET.get("page", "1"))
    except ValueError:
        return 1
    return min(max(page, 1), max_page)


def page_of(rows: Any, *, page: int, size: int) -> tuple[list[Any], dict[str, Any]]:
    """The rows of `page` from a queryset (sliced in SQL) or a list, and the context that
    `core/_pagination.html` reads."""
    offset = (page - 1) * size
    window = list(rows[offset : offset + size + 1])
    context = {
        "page": page,
        "has_previous": page > 1,
        "has_next": len(window) > size,
        "previous_page": page - 1,
        "next_page": page + 1,
    }
    return window[:size], context
