"""Arguments a device gets wrong are refused with their names (review findings, issue 4)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from client_sdk.features import check_id_collection, validate_event

NOW = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)


def test_an_event_far_in_the_future_is_refused() -> None:
    with pytest.raises(ValueError, match=r"at is .* after now"):
        validate_event("view", "a0", 1, NOW + timedelta(days=3650), now=NOW)
    # A device clock a few hours ahead is tolerated.
    event = validate_event("view", "a0", 1, NOW + timedelta(hours=3), now=NOW)
    assert event.at > NOW


@pytest.mark.parametrize("value", ["sku-1", b"sku-1", 5])
def test_a_single_id_where_a_collection_is_meant_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="exclude must be a collection of item ids"):
        check_id_collection(value, "exclude")
    check_id_collection(["sku-1"], "exclude")
    check_id_collection(frozenset(), "exclude")
