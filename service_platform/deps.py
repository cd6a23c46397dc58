"""Request-scoped dependencies shared by the routes: database session and the app's clock."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from fastapi import Request
from sqlalchemy.orm import Session


def get_db(request: Request) -> Iterator[Session]:
    with request.app.state.sessionmaker() as session:
        yield session


def get_now(request: Request) -> dt.datetime:
    """The current time (aware, UTC) from the app's clock, which tests may replace."""
    return request.app.state.clock()


def single_valued_query(request: Request) -> None:
    """Every query parameter of the API is a single value (the spec has no arrays in queries): a repeated one
    (``?type=a&type=b``) is 422 ``validation_failed``, not silently read as one of its values."""
    from service_platform.errors import ApiError

    seen: set[str] = set()
    for name, _value in request.query_params.multi_items():
        if name in seen:
            raise ApiError(422, "validation_failed", f"query parameter {name} is given more than once")
        seen.add(name)
