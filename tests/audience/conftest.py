"""An application with effective content (the sending tests' shop)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from tests.conftest import Backend
from tests.sending.conftest import Shop, make_shop


@pytest.fixture
def shop(session: Session, backend: Backend) -> Shop:
    return make_shop(session, backend.redis)
