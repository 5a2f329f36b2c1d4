"""Reorder shortcuts on the device: due-ness, pins, snoozes, "bought elsewhere", reorder (issue 5).

Known answers come from the log-logistic arithmetic: with median M and log scale s the survival
is S(x) = 1 / (1 + (x / M) ** (1 / s)); with s = 1 and M = 30, S(30) = 1/2 and S(60) = 1/3.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client_sdk.errors import FormatError
from client_sdk.priors import (
    QUANTILE_LEVELS,
    DueParams,
    IntervalPrior,
    ItemPrior,
    ReorderPriors,
    default_priors,
    encode_priors,
    parse_priors,
)
from client_sdk.purchases import ItemPurchases
from client_sdk.shortcut_state import MAX_PINNED
from client_sdk.shortcuts import (
    DueEstimate,
    PurchaseHistory,
    ShortcutConfig,
    ShortcutState,
    estimate_due,
    mark_bought_elsewhere,
    pin,
    prune,
    reorder,
    shortcuts,
    snooze,
    unpin,
)

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)
TODAY = NOW.date()
EXACT = DueParams(prior_strength=2.0, own_scale=0.5, spread_scale=1.0, irregular_share=0.0)


def interval(
    median: float, scale: float, level: str = "item", repeaters: int = 20
) -> IntervalPrior:
    quantiles = tuple(median * (p / (1 - p)) ** scale for p in QUANTILE_LEVELS)
    return IntervalPrior(
        level, repeaters, math.log(median), scale, tuple(max(1.0, q) for q in quantiles)
    )


def prior(
    repeat: float = 0.5, median: float = 30.0, scale: float = 1.0, quantity: float = 1.0
) -> ItemPrior:
    return ItemPrior("item", 20, repeat, quantity, interval(median, scale))


def make_priors(
    items: dict[str, ItemPrior] | None = None, params: DueParams = EXACT
) -> ReorderPriors:
    shop = ItemPrior("shop", 500, 0.3, 1.0, interval(30.0, 1.0, "shop", 200))
    category = ItemPrior("category", 50, 0.4, 2.0, interval(14.0, 0.5, "category", 30))
    return ReorderPriors(
        min_buyers=10,
        params=params,
        shop=shop,
        categories={"dairy": category},
        items=items or {},
        item_categories={"yoghurt": "dairy"},
    )


def days_ago(
    *ages: int, quantity: float = 1.0, item: str = "milk"
) -> list[tuple[str, date, float]]:
    return [(item, TODAY - timedelta(days=age), quantity) for age in ages]


def only(item_id: str, estimates: list[DueEstimate]) -> DueEstimate:
    return next(e for e in estimates if e.item_id == item_id)


# --- the due-ness arithmetic --------------------------------------------------------------


def test_bought_once_today_is_expected_after_the_prior_median() -> None:
    history = PurchaseHistory.from_purchases(days_ago(0))
    (estimate,) = estimate_due(history, make_priors({"milk": prior(repeat=1.0)}), now=NOW)
    assert estimate.expected_date == TODAY + timedelta(days=30)
    assert estimate.interval_days == pytest.approx(30.0)


def test_expected_date_is_the_median_given_the_wait_so_far() -> None:
    # odds(10) = 10/30, so the conditional median is 30 * (1 + 2/3) = 50 days after the purchase
    history = PurchaseHistory.from_purchases(days_ago(10))
    (estimate,) = estimate_due(history, make_priors({"milk": prior(repeat=1.0)}), now=NOW)
    assert estimate.expected_date == TODAY + timedelta(days=40)


def test_due_probability_known_answers() -> None:
    config = ShortcutConfig(window_days=30)
    just_bought = PurchaseHistory.from_purchases(days_ago(0))
    (estimate,) = estimate_due(
        just_bought, make_priors({"milk": prior(repeat=1.0)}), now=NOW, config=config
    )
    assert estimate.due_probability == pytest.approx(0.5)  # F(30) = 1/2
    irregular = ShortcutConfig(window_days=30, params=DueParams(irregular_share=0.1))
    (estimate,) = estimate_due(
        just_bought, make_priors({"milk": prior(repeat=1.0)}), now=NOW, config=irregular
    )
    assert estimate.due_probability == pytest.approx(0.1 + 0.9 * 0.5, rel=0.05)
    # bought once 30 days ago, repeat probability 1/2: still buying 1/3, then 1 - S(60)/S(30)
    waited = PurchaseHistory.from_purchases(days_ago(30))
    (estimate,) = estimate_due(
        waited, make_priors({"milk": prior(repeat=0.5)}), now=NOW, config=config
    )
    assert estimate.due_probability == pytest.approx(1 / 9)


def test_the_more_own_purchases_the_more_the_own_rhythm_counts() -> None:
    priors = make_priors({"milk": prior(median=30.0)})
    three = PurchaseHistory.from_purchases(days_ago(20, 10, 0))
    eleven = PurchaseHistory.from_purchases(days_ago(*range(100, -1, -10)))
    (few,) = estimate_due(three, priors, now=NOW)
    (many,) = estimate_due(eleven, priors, now=NOW)
    assert few.interval_days == pytest.approx(math.sqrt(10 * 30))  # weight 2 / (2 + 2)
    assert many.interval_days == pytest.approx(10 ** (10 / 12) * 30 ** (2 / 12))  # 10 / 12
    assert 10 < many.interval_days < few.interval_days < 30


def test_reason_says_the_rhythm_and_the_last_purchase() -> None:
    history = PurchaseHistory.from_purchases(days_ago(*range(59, 10, -12)))
    (estimate,) = estimate_due(history, make_priors(), now=NOW)
    assert estimate.reason == "you buy this about every 12 days; last bought 11 days ago"
    once = PurchaseHistory.from_purchases(days_ago(1, item="yoghurt"))
    (estimate,) = estimate_due(once, make_priors(), now=NOW)
    assert estimate.reason == (
        "you bought this yesterday; items like this are usually bought again after about 14 days"
    )


def test_priors_fall_back_from_item_to_category_to_shop() -> None:
    own = prior(median=7.0)
    priors = make_priors({"milk": own})
    assert priors.prior_for("milk") is own
    assert priors.prior_for("yoghurt").level == "category"
    assert priors.prior_for("anything-else").level == "shop"


# --- shortcuts(): ranking, durables, pins, snoozes ----------------------------------------


def regular_shopper() -> PurchaseHistory:
    return PurchaseHistory.from_purchases(
        days_ago(27, 20, 13, 6, item="due")  # every 7 days, due tomorrow
        + days_ago(21, 14, 7, 0, item="fresh")  # every 7 days, bought today
        + days_ago(221, 214, 207, 200, item="lapsed")  # stopped half a year ago
    )


def test_due_items_come_first() -> None:
    priors = make_priors(
        {name: prior(median=7.0, scale=0.3) for name in ("due", "fresh", "lapsed")}
    )
    found = shortcuts(regular_shopper(), priors, k=3, now=NOW)
    assert found[0].item_id == "due"
    due = {s.item_id: s.due.due_probability for s in found if s.due}
    assert due["due"] > due["fresh"] and due["due"] > due["lapsed"]


def test_durable_goods_bought_once_never_become_shortcuts() -> None:
    history = PurchaseHistory.from_purchases(
        days_ago(40, item="tv") + days_ago(300, 30, item="kettle") + days_ago(3, item="soap")
    )
    priors = make_priors({"tv": prior(repeat=0.005), "kettle": prior(repeat=0.005)})
    found = [s.item_id for s in shortcuts(history, priors, k=10, now=NOW)]
    assert "tv" not in found
    assert set(found) == {"kettle", "soap"}  # bought twice: not a one-off
    assert "tv" in {e.item_id for e in estimate_due(history, priors, now=NOW)}


def test_pins_show_first_in_the_shoppers_order_even_beyond_k() -> None:
    state = pin(pin(ShortcutState(), "fresh"), "never-bought", position=0)
    found = shortcuts(regular_shopper(), make_priors(), state, k=3, now=NOW)
    assert [(s.item_id, s.pinned) for s in found][:2] == [("never-bought", True), ("fresh", True)]
    assert found[0].due is None and found[0].reason == "pinned by you"
    assert len(found) == 3 and not found[2].pinned and found[2].item_id != "fresh"
    assert [
        s.item_id for s in shortcuts(regular_shopper(), make_priors(), state, k=1, now=NOW)
    ] == [
        "never-bought",
        "fresh",
    ]
    moved = pin(state, "fresh", position=0)
    assert moved.pinned == ("fresh", "never-bought")
    assert unpin(moved, "fresh").pinned == ("never-bought",)
    assert unpin(moved, "not-pinned") == moved


def test_snoozed_items_wait_until_the_snooze_ends_unless_pinned() -> None:
    state = snooze(ShortcutState(), "due", 3, now=NOW)
    assert state.snoozed_until["due"] == TODAY + timedelta(days=3)
    later = NOW + timedelta(days=2)
    assert "due" not in [
        s.item_id for s in shortcuts(regular_shopper(), make_priors(), state, now=later)
    ]
    ended = NOW + timedelta(days=3)
    assert "due" in [
        s.item_id for s in shortcuts(regular_shopper(), make_priors(), state, now=ended)
    ]
    pinned = pin(state, "due")
    assert shortcuts(regular_shopper(), make_priors(), pinned, now=later)[0].item_id == "due"
    assert prune(state, now=ended).snoozed_until == {}
    with pytest.raises(ValueError, match="days must be an int"):
        snooze(state, "due", 0, now=NOW)


def test_bought_elsewhere_restarts_the_clock() -> None:
    history, priors = regular_shopper(), make_priors({"due": prior(median=7.0, scale=0.3)})
    before = only("due", estimate_due(history, priors, now=NOW))
    state = mark_bought_elsewhere(snooze(ShortcutState(), "due", 5, now=NOW), "due", now=NOW)
    after = only("due", estimate_due(history, priors, state, now=NOW))
    assert "due" not in state.snoozed_until
    assert after.last_bought == TODAY
    assert after.reason == "you buy this about every 7 days; last bought elsewhere today"
    assert after.due_probability < before.due_probability
    assert after.purchase_days == before.purchase_days


def test_exclude_leaves_items_out() -> None:
    found = shortcuts(regular_shopper(), make_priors(), now=NOW, exclude={"due"})
    assert "due" not in [s.item_id for s in found]


def test_reorder_returns_the_usual_quantity_and_records_the_purchase() -> None:
    history = PurchaseHistory.from_purchases(
        days_ago(21, quantity=2) + days_ago(14, quantity=2) + days_ago(7, quantity=3)
    )
    state = mark_bought_elsewhere(snooze(ShortcutState(), "milk", 9, now=NOW), "milk", now=NOW)
    payload, new_history, new_state = reorder(history, state, make_priors(), "milk", now=NOW)
    assert (payload.item_id, payload.quantity) == ("milk", 2.0)
    assert new_history.items["milk"].days[-1] == TODAY.toordinal()
    assert new_history.items["milk"].purchase_days == 4 and history.items["milk"].purchase_days == 3
    assert "milk" not in new_state.snoozed_until and "milk" not in new_state.bought_elsewhere
    payload, _, _ = reorder(
        history, state, make_priors({"eggs": prior(quantity=2.4)}), "eggs", now=NOW
    )
    assert payload.quantity == 2.0  # never bought here: the prior's usual quantity, whole units


def test_a_clock_before_a_purchase_is_refused_without_naming_the_item() -> None:
    history = PurchaseHistory.from_purchases(days_ago(0, item="secret-item"))
    with pytest.raises(ValueError, match="earlier than a recorded purchase") as info:
        shortcuts(history, make_priors(), now=NOW - timedelta(days=1))
    assert "secret-item" not in str(info.value)


@settings(max_examples=60, deadline=None)
@given(
    purchases=st.lists(
        st.tuples(st.sampled_from("abcdefgh"), st.integers(0, 400), st.integers(1, 3)),
        min_size=1,
        max_size=40,
    ),
    pinned=st.lists(st.sampled_from("abcxyz"), unique=True, max_size=4),
    snoozed=st.sets(st.sampled_from("abcdefgh"), max_size=3),
    excluded=st.sets(st.sampled_from("abcdefgh"), max_size=3),
    k=st.integers(1, 8),
)
def test_shortcut_invariants(
    purchases: list[tuple[str, int, int]],
    pinned: list[str],
    snoozed: set[str],
    excluded: set[str],
    k: int,
) -> None:
    history = PurchaseHistory.from_purchases(
        (item, TODAY - timedelta(days=age), quantity) for item, age, quantity in purchases
    )
    state = ShortcutState(tuple(pinned), {i: TODAY + timedelta(days=2) for i in snoozed})
    priors = make_priors({"a": prior(repeat=0.001), "b": prior(median=3.0, scale=0.2)})
    found = shortcuts(history, priors, state, k=k, now=NOW, exclude=excluded)
    assert [s.item_id for s in found if s.pinned] == pinned
    rest = [s for s in found if not s.pinned]
    assert len(found) <= max(k, len(pinned))
    assert not {s.item_id for s in rest} & (snoozed | excluded | set(pinned))
    chances = [s.due.due_probability for s in rest if s.due]
    assert chances == sorted(chances, reverse=True)
    for s in found:
        if s.due is not None:
            assert 0.0 <= s.due.due_probability <= 1.0 and 0.0 <= s.due.confidence <= 1.0
            assert s.due.expected_date >= TODAY and s.due.last_bought <= TODAY


# --- purchase histories and the state's JSON form ----------------------------------------


def test_purchases_collapse_to_days_in_any_order() -> None:
    history = PurchaseHistory.from_purchases(
        [
            ("milk", NOW, 1),
            ("milk", NOW - timedelta(days=3), 2),
            ("milk", NOW.replace(hour=20), 1.5),
        ]
    )
    record = history.items["milk"]
    assert record.days == ((TODAY - timedelta(days=3)).toordinal(), TODAY.toordinal())
    assert record.quantities == (2.0, 2.5)
    assert record.usual_quantity == 2.25  # fractional units keep their median
    inserted = history.with_purchase("milk", TODAY - timedelta(days=1), 1).items["milk"]
    assert inserted.purchase_days == 3 and list(inserted.days) == sorted(inserted.days)
    with pytest.raises(ValueError, match="quantity"):
        history.with_purchase("milk", TODAY, 0)
    with pytest.raises(ValueError, match="ascending"):
        ItemPurchases((5, 5), (1.0, 1.0))


def test_state_round_trips_through_its_json_form() -> None:
    state = mark_bought_elsewhere(snooze(pin(ShortcutState(), "a"), "b", 4, now=NOW), "c", now=NOW)
    assert ShortcutState.from_dict(state.to_dict()) == state
    broken = {**state.to_dict(), "snoozed_until": {"b": "tomorrow-ish"}}
    with pytest.raises(ValueError, match="'snoozed_until' is malformed") as info:
        ShortcutState.from_dict(broken)
    assert "tomorrow-ish" not in str(info.value)
    with pytest.raises(ValueError, match="missing field 'pinned'"):
        ShortcutState.from_dict({})
    with pytest.raises(ValueError, match="more than once"):
        ShortcutState(("a", "a"))
    with pytest.raises(ValueError, match=f"at most {MAX_PINNED}"):
        ShortcutState(tuple(f"i{n}" for n in range(MAX_PINNED + 1)))


# --- the priors file ------------------------------------------------------------------------


def test_priors_round_trip_through_their_file() -> None:
    priors = make_priors({"milk": prior(median=7.0, scale=0.3, quantity=2.0)})
    assert parse_priors(encode_priors(priors)) == priors


def _mutated(path: tuple[str, ...], value: object) -> bytes:
    """A version-1 file (still read; version 2 is in test_priors_format.py), one field changed."""
    raw = json.loads(encode_priors(make_priors({"milk": prior()}), version=1))
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return json.dumps(raw).encode()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("version",), 99, "version 99"),
        (("items", "milk", "repeat_probability"), 1.5, "repeat_probability must be in"),
        (("items", "milk", "buyers"), 9, "fewer than min_buyers=10"),
        (("items", "milk", "interval", "repeaters"), 3, "3 repeaters, fewer than"),
        (("items", "milk", "buyers"), True, "'items.milk.buyers': expected int, found bool"),
        (("items", "milk", "interval", "log_scale"), "wide", "expected a finite number"),
        (("item_categories", "yoghurt"), 7, "expected a category index in [0, 1)"),
        (("params", "boldness"), 1.0, "unknown parameter"),
        (("shop", "level"), "galaxy", "level must be one of"),
    ],
)
def test_malformed_priors_are_refused_with_the_field(
    path: tuple[str, ...], value: object, message: str
) -> None:
    with pytest.raises(FormatError, match=re.escape(message)):
        parse_priors(_mutated(path, value))


def test_priors_that_are_not_json_are_refused() -> None:
    with pytest.raises(FormatError, match="not UTF-8 JSON"):
        parse_priors(b"\xff{")
    with pytest.raises(FormatError, match="expected an object"):
        parse_priors(b"[]")


def test_a_bundle_without_priors_still_gets_shortcuts_from_the_default() -> None:
    history = PurchaseHistory.from_purchases(days_ago(3, item="soap"))
    (found,) = shortcuts(history, default_priors(), k=3, now=NOW)
    assert (
        found.reason
        == "you bought this 3 days ago; items are usually bought again after about 30 days"
    )
    assert parse_priors(encode_priors(default_priors())) == default_priors()
