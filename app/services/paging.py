"""One page of a query's rows, and how many rows there are in all (the management
API's lists: the console shows only the latest, a program pages through all)."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")


def page_of(db: Session, query: Select[T], page: int,
            page_size: int) -> tuple[list[T], int]:
    counted: Select[Any] = select(func.count()).select_from(query.order_by(None).subquery())
    total = db.scalar(counted) or 0
    rows = db.scalars(query.limit(page_size).offset((max(page, 1) - 1) * page_size)).all()
    return list(rows), total
