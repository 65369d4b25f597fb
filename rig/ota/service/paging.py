"""Paged lists as the public API pages them: `{number, size, totalPages, ...}`.

Sorting is by a named API field; only the fields a list declares are accepted, so a typo in
`sort=` is a clear 400 instead of a silently unsorted page. A hidden tie-breaker keeps pages
stable when many rows share one timestamp.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Query

from rig.ota.service.errors import invalid
from rig.ota.service.store import Store

DEFAULT_SIZE = 50
MAX_SIZE = 500
MAX_PAGE = 1_000_000  # keeps OFFSET well inside SQLite's integers


@dataclass(frozen=True)
class PageRequest:
    """Which page of a list, how big, and sorted how (`field,asc|desc`, None = the default)."""

    page: int = 0
    size: int = DEFAULT_SIZE
    sort: str | None = None


def page_params(
    page: int = Query(0, ge=0, le=MAX_PAGE, description="0-based page number"),
    size: int = Query(DEFAULT_SIZE, ge=1, le=MAX_SIZE, description="page size (max 500)"),
    sort: str | None = Query(None, description="field,asc or field,desc"),
) -> PageRequest:
    """FastAPI dependency: the paging query parameters, validated (422 names the field)."""
    return PageRequest(page, size, sort)


def _order(sort: str, fields: dict[str, str]) -> tuple[str, str, str]:
    """(api field, sql column, direction) from `field[,dir]`."""
    field, _, direction = sort.partition(",")
    field, direction = field.strip(), (direction.strip().lower() or "asc")
    if field not in fields:
        raise invalid(
            f"cannot sort by {field!r}",
            f"sort by one of: {', '.join(sorted(fields))} (e.g. sort={next(iter(fields))},desc)",
        )
    if direction not in ("asc", "desc"):
        raise invalid(f"sort direction {direction!r} is neither 'asc' nor 'desc'")
    return field, fields[field], direction


def paged(
    store: Store,
    *,
    select: str,
    source: str,
    params: Sequence[Any],
    fields: dict[str, str],
    default_sort: str,
    tiebreak: str,
    request: PageRequest,
    convert: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """Run `SELECT select FROM source` (source holds the joins and WHERE) as one page."""
    field, column, direction = _order(request.sort or default_sort, fields)
    with store.transaction():  # the count and the rows from one snapshot
        total = store.scalar(f"SELECT COUNT(*) FROM {source}", params)
        rows = store.all(
            f"SELECT {select} FROM {source} ORDER BY {column} {direction}, {tiebreak} {direction} "
            "LIMIT ? OFFSET ?",
            [*params, request.size, request.page * request.size],
        )
        content = [convert(row) for row in rows]
    return page_body(content, total, request, f"{field},{direction}")


def page_body(content: list[Any], total: int, request: PageRequest, sort: str) -> dict[str, Any]:
    return {
        "number": request.page,
        "size": request.size,
        "totalPages": math.ceil(total / request.size),
        "numberOfElements": len(content),
        "totalElements": total,
        "content": content,
        "sort": sort,
    }
