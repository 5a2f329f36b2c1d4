"""The interest decay a bundle ships is used, within the shopper's promises."""

from __future__ import annotations

from client_sdk.features import MAX_BROWSE_HALF_LIFE_DAYS, InterestConfig, bundle_interest


def test_no_tuned_values_means_the_defaults() -> None:
    assert bundle_interest({}) == InterestConfig()
    assert bundle_interest({"history_half_life_days": "nonsense"}) == InterestConfig()


def test_tuned_values_are_used_and_null_means_no_decay() -> None:
    interest = bundle_interest(
        {"history_half_life_days": {"purchase": None, "cart": 30, "view": 3, "search": 2}}
    )
    assert interest.purchase_half_life_days >= 1e6
    assert interest.cart_half_life_days == 30
    assert interest.view_half_life_days == 3
    assert interest.search_half_life_days == 2


def test_views_and_searches_fade_within_a_month_whatever_the_bundle_says() -> None:
    interest = bundle_interest({"history_half_life_days": {"view": 365, "search": None}})
    assert interest.view_half_life_days == MAX_BROWSE_HALF_LIFE_DAYS == 30
    assert interest.search_half_life_days == MAX_BROWSE_HALF_LIFE_DAYS


def test_unusable_entries_fall_back_per_kind() -> None:
    interest = bundle_interest({"history_half_life_days": {"cart": -1, "purchase": True}})
    assert interest.cart_half_life_days == InterestConfig().cart_half_life_days
    assert interest.purchase_half_life_days == InterestConfig().purchase_half_life_days
