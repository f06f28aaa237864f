"""The schemathesis run of test_api_fuzz.py against PostgreSQL, in a file of its own: pytest-xdist
(--dist loadfile) then runs it on another worker than the SQLite run, the two being the suite's
longest tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.conftest import LiveCity
from tests.e2e.test_api_fuzz import (
    test_the_api_answers_generated_requests_as_its_document_says as fuzz,
)


@pytest.mark.parametrize("city", ["postgresql"], indirect=True)
def test_the_api_answers_generated_requests_as_its_document_says(
    city: LiveCity, record_property: Callable[[str, object], None]
) -> None:
    fuzz(city, record_property)
