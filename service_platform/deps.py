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
