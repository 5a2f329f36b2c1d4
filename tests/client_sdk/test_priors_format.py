"""`reorder_priors.json` version 2: columns, checked column by column, read lazily.

Known answers: a shop of two categories and three items with their own priors, written by
`encode_priors` and read back; every malformed column is refused naming the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from client_sdk import priors as priors_module
from client_sdk._prior_columns import PriorColumns
from client_sdk.errors import FormatError
from client_sdk.priors import (
    FORMAT_VERSION,
    DueParams,
    IntervalPrior,
    ItemPrior,
    ReorderPriors,
    encode_priors,
    parse_priors,
)

SHOP = ItemPrior(
    "shop", 500, 0.3, 1.0, IntervalPrior("shop", 200, math.log(30.0), 1.0, (5, 15, 30, 60, 120))
)
DAIRY = ItemPrior(
    "category", 60, 0.6, 1.0, IntervalPrior("category", 30, math.log(10.0), 0.5, (4, 7, 10, 14, 20))
)
HOME = ItemPrior(
    "category", 15, 0.2, 1.0, IntervalPrior("shop", 200, math.log(30.0), 1.0, (5, 15, 30, 60, 120))
)
MILK = ItemPrior(
    "item", 40, 0.75, 2.0, IntervalPrior("item", 25, math.log(7.0), 0.3, (3, 5, 7, 9.5, 14))
)
EGGS = ItemPrior(
    "item", 12, 0.5, 1.0, IntervalPrior("category", 30, math.log(10.0), 0.5, (4, 7, 10, 14, 20))
)
SOAP = ItemPrior(
    "item", 20, 0.25, 1.5, IntervalPrior("default", 0, math.log(30.0), 0.7, (6, 14, 30, 64, 140))
)
LINKS = {"yoghurt": "dairy", "sponge": "home", "butter": "dairy"}


def shop_priors() -> ReorderPriors:
    return ReorderPriors(
        min_buyers=10,
        params=DueParams(prior_strength=3.0),
        shop=SHOP,
        categories={"dairy": DAIRY, "home": HOME},
        items={"milk": MILK, "eggs": EGGS, "soap": SOAP},
        item_categories=LINKS,
    )


def document() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(encode_priors(shop_priors()))
    return raw


def mutated(change: Callable[[dict[str, Any]], object]) -> bytes:
    raw = document()
    change(raw)
    return json.dumps(raw).encode()


# --- the layout and the round trip ----------------------------------------------------------


def test_version_2_writes_columns_with_known_values() -> None:
    raw = document()
    assert (raw["format"], raw["version"], FORMAT_VERSION) == ("facetwo-reorder-priors", 2, 2)
    items = raw["items"]
    assert items["ids"] == ["milk", "eggs", "soap"]
    assert items["level"] == ["item", "item", "item"]
    assert items["buyers"] == [40, 12, 20]
    assert items["repeat_probability"] == [0.75, 0.5, 0.25]
    assert items["usual_quantity"] == [2.0, 1.0, 1.5]
    assert items["interval_level"] == ["item", "category", "default"]
    assert items["repeaters"] == [25, 30, 0]
    assert items["log_scale"] == [0.3, 0.5, 0.7]
    assert items["quantiles_days"] == [3, 5, 7, 9.5, 14, 4, 7, 10, 14, 20, 6, 14, 30, 64, 140]
    assert raw["categories"]["names"] == ["dairy", "home"]
    assert raw["categories"]["buyers"] == [60, 15]
    assert raw["item_categories"] == [["yoghurt", "butter"], ["sponge"]]
    assert raw["shop"]["interval"]["repeaters"] == 200  # the shop stays one object


def test_version_2_round_trips_to_equal_lookups() -> None:
    parsed = parse_priors(encode_priors(shop_priors()))
    assert parsed == shop_priors()
    assert parsed.prior_for("milk") == MILK
    assert parsed.prior_for("soap").interval.level == "default"
    assert parsed.prior_for("eggs").interval.median_days == pytest.approx(10.0)
    assert parsed.prior_for("yoghurt") == DAIRY
    assert parsed.prior_for("sponge") == HOME
    assert parsed.prior_for("anything-else") == SHOP
    assert parsed.params.prior_strength == 3.0
    assert dict(parsed.item_categories) == LINKS


def test_a_version_1_file_still_parses_to_equal_lookups() -> None:
    old = encode_priors(shop_priors(), version=1)
    assert json.loads(old)["items"]["milk"]["interval"]["repeaters"] == 25  # one object per prior
    from_v1, from_v2 = parse_priors(old), parse_priors(encode_priors(shop_priors()))
    assert from_v1 == from_v2
    for item_id in ["milk", "eggs", "soap", "yoghurt", "butter", "sponge", "unknown"]:
        assert from_v1.prior_for(item_id) == from_v2.prior_for(item_id)


def test_number_columns_take_json_integers_as_floats() -> None:
    def integral(raw: dict[str, Any]) -> None:
        raw["items"]["usual_quantity"][0] = 3

    quantity = parse_priors(mutated(integral)).items["milk"].usual_quantity
    assert (quantity, type(quantity)) == (3.0, float)


def test_only_known_versions_are_written_or_read() -> None:
    with pytest.raises(ValueError, match=r"version must be one of \(1, 2\), found 3"):
        encode_priors(shop_priors(), version=3)
    with pytest.raises(
        FormatError, match="version 1 or 2, found 'facetwo-reorder-priors' version 3"
    ):
        parse_priors(mutated(lambda raw: raw.update(version=3)))
    with pytest.raises(FormatError, match="version True"):  # a bool is not version 1
        parse_priors(
            encode_priors(shop_priors(), version=1).replace(b'"version":1', b'"version":true')
        )


# --- malformed columns ------------------------------------------------------------------------


def _set(*path: str | int, value: object) -> Callable[[dict[str, Any]], None]:
    def change(raw: dict[str, Any]) -> None:
        node: Any = raw
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def _drop(*path: str) -> Callable[[dict[str, Any]], None]:
    def change(raw: dict[str, Any]) -> None:
        node: Any = raw
        for key in path[:-1]:
            node = node[key]
        node[path[-1]].pop()

    return change


MALFORMED: list[tuple[str, Callable[[dict[str, Any]], object], str]] = [
    # wrong types
    (
        "not columns",
        _set("items", value=[]),
        "field 'items': expected an object of columns, found list",
    ),
    (
        "column missing",
        lambda raw: raw["items"].pop("level"),
        "field 'items.level': expected a list, found nothing",
    ),
    (
        "column not a list",
        _set("items", "buyers", value=40),
        "field 'items.buyers': expected a list, found int",
    ),
    (
        "string in numbers",
        _set("items", "log_scale", 1, value="wide"),
        "field 'items.log_scale[1]' (item 'eggs'): expected a finite number, found str",
    ),
    (
        "number in strings",
        _set("items", "level", 2, value=1),
        "field 'items.level[2]' (item 'soap'): expected a string, found int",
    ),
    (
        "float in integers",
        _set("items", "buyers", 0, value=40.0),
        "field 'items.buyers[0]' (item 'milk'): expected an integer, found float",
    ),
    (
        "bool in integers",
        _set("items", "buyers", 1, value=True),
        "field 'items.buyers[1]' (item 'eggs'): expected an integer, found bool",
    ),
    (
        "bool in numbers",
        _set("categories", "repeat_probability", 1, value=False),
        "field 'categories.repeat_probability[1]' (category 'home'): expected a finite "
        "number, found bool",
    ),
    (
        "nested list",
        _set("items", "quantiles_days", 7, value=[7]),
        "field 'items.quantiles_days[7]' (item 'eggs'): expected a finite number, found list",
    ),
    (
        "object in column",
        _set("items", "repeaters", 0, value={"n": 25}),
        "field 'items.repeaters[0]' (item 'milk'): expected an integer, found dict",
    ),
    (
        "id not a string",
        _set("items", "ids", 1, value=7),
        "field 'items.ids[1]': expected a string, found int",
    ),
    (
        "nested link",
        _set("item_categories", 1, 0, value=["sponge"]),
        "field 'item_categories[1][0]' (category 'home'): expected a string, found list",
    ),
    (
        "links not lists",
        _set("item_categories", value={"sponge": 1}),
        "field 'item_categories': expected a list of item id lists, found dict",
    ),
    (
        "link group not a list",
        _set("item_categories", 0, value="yoghurt"),
        "field 'item_categories[0]' (category 'dairy'): expected a list of item ids, found str",
    ),
    (
        "too large for int64",
        _set("items", "buyers", 2, value=2**64),
        "field 'items.buyers[2]' (item 'soap'): expected a 64-bit integer",
    ),
    (
        "too large for a float",
        _set("items", "log_median", 2, value=10**400),
        "field 'items.log_median[2]' (item 'soap'): expected a finite number, found an "
        "integer too large",
    ),
    # lengths
    (
        "short column",
        _drop("items", "log_median"),
        "field 'items.log_median': expected 3 values (1 per item), found 2",
    ),
    (
        "short quantiles",
        _drop("categories", "quantiles_days"),
        "field 'categories.quantiles_days': expected 10 values (5 per category), found 9",
    ),
    (
        "link groups",
        lambda raw: raw["item_categories"].append([]),
        "field 'item_categories': expected 2 lists (one per category), found 3",
    ),
    # ranges and levels
    (
        "probability",
        _set("items", "repeat_probability", 0, value=1.5),
        "field 'items.repeat_probability[0]' (item 'milk'): expected a number in [0, 1], found 1.5",
    ),
    (
        "not a number",
        _set("items", "repeat_probability", 1, value=math.nan),
        "field 'items.repeat_probability[1]' (item 'eggs'): expected a number in [0, 1], found nan",
    ),
    (
        "quantity",
        _set("items", "usual_quantity", 2, value=0),
        "field 'items.usual_quantity[2]' (item 'soap'): expected a number in (0, 1e+06], found 0",
    ),
    (
        "log median",
        _set("categories", "log_median", 0, value=-1.0),
        "field 'categories.log_median[0]' (category 'dairy'): expected a number in [0, "
        "10.5051], found -1.0",
    ),
    (
        "log scale",
        _set("items", "log_scale", 0, value=9.0),
        "field 'items.log_scale[0]' (item 'milk'): expected a number in [0.01, 5], found 9.0",
    ),
    (
        "quantile below 1",
        _set("items", "quantiles_days", 5, value=0.5),
        "field 'items.quantiles_days[5]' (item 'eggs'): expected a number >= 1, found 0.5",
    ),
    (
        "infinite quantile",
        _set("items", "quantiles_days", 14, value=math.inf),
        "field 'items.quantiles_days[14]' (item 'soap'): expected a number >= 1, found inf",
    ),
    (
        "descending quantiles",
        _set("items", "quantiles_days", 8, value=30),
        "field 'items.quantiles_days[9]' (item 'eggs'): expected days in ascending order, "
        "found 20 after 30",
    ),
    (
        "unknown level",
        _set("items", "level", 1, value="galaxy"),
        "field 'items.level[1]' (item 'eggs'): expected one of item, category, shop, found "
        "'galaxy'",
    ),
    (
        "default item",
        _set("items", "level", 0, value="default"),
        "field 'items.level[0]' (item 'milk'): only the shop prior may be the default",
    ),
    (
        "unknown interval level",
        _set("items", "interval_level", 0, value=""),
        "field 'items.interval_level[0]' (item 'milk'): expected one of item, category, shop, "
        "default, found ''",
    ),
    # k-anonymity
    (
        "few buyers",
        _set("items", "buyers", 1, value=9),
        "field 'items.buyers[1]' (item 'eggs'): expected at least min_buyers=10 buyers, found 9",
    ),
    (
        "few category buyers",
        _set("categories", "buyers", 1, value=3),
        "field 'categories.buyers[1]' (category 'home'): expected at least min_buyers=10 "
        "buyers, found 3",
    ),
    (
        "few repeaters",
        _set("items", "repeaters", 0, value=3),
        "field 'items.repeaters[0]' (item 'milk'): expected at least min_buyers=10 repeaters, "
        "found 3",
    ),
    (
        "default with repeaters",
        _set("items", "repeaters", 2, value=12),
        "field 'items.repeaters[2]' (item 'soap'): expected 0 repeaters for a default "
        "interval prior, found 12",
    ),
    (
        "min_buyers",
        _set("min_buyers", value=0),
        "min_buyers must be >= 1, found 0",
    ),
    # keys
    (
        "duplicate item",
        _set("items", "ids", 2, value="milk"),
        "field 'items.ids[2]': item 'milk' is listed more than once",
    ),
    (
        "duplicate category",
        _set("categories", "names", 1, value="dairy"),
        "field 'categories.names[1]': category 'dairy' is listed more than once",
    ),
    (
        "item in two categories",
        _set("item_categories", 1, 0, value="yoghurt"),
        "field 'item_categories[1][0]': item 'yoghurt' is listed more than once",
    ),
    # the shop and the parameters stay objects (version 1's checks)
    (
        "shop level",
        _set("shop", "level", value="galaxy"),
        "field 'shop': level must be one of",
    ),
    (
        "parameter",
        _set("params", "boldness", value=1.0),
        "field 'params': unknown parameter(s) ['boldness']",
    ),
]


@pytest.mark.parametrize(
    ("change", "message"), [row[1:] for row in MALFORMED], ids=[row[0] for row in MALFORMED]
)
def test_malformed_columns_are_refused_naming_the_field(
    change: Callable[[dict[str, Any]], object], message: str
) -> None:
    with pytest.raises(FormatError, match="^reorder_priors.json: .*" + re.escape(message)):
        parse_priors(mutated(change))


def test_deep_nesting_in_a_column_is_refused() -> None:
    data = encode_priors(shop_priors())
    deep = b'"buyers":' + b"[" * 100_000 + b"]" * 100_000
    assert b'"buyers":[40,12,20]' in data
    with pytest.raises(FormatError, match=r"^reorder_priors\.json: JSON nested too deeply$"):
        parse_priors(data.replace(b'"buyers":[40,12,20]', deep))


def test_too_many_entries_are_refused_before_any_column_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(priors_module, "_MAX_ENTRIES", 7)  # 2 categories + 3 items + 3 links = 8
    broken = mutated(_set("items", "buyers", value=None))
    with pytest.raises(FormatError, match="more than 7 entries"):
        parse_priors(broken)
    monkeypatch.setattr(priors_module, "_MAX_ENTRIES", 8)
    assert len(parse_priors(encode_priors(shop_priors())).items) == 3


# --- the lazy mappings --------------------------------------------------------------------


def test_items_are_a_read_only_mapping_in_file_order() -> None:
    items = parse_priors(encode_priors(shop_priors())).items
    assert isinstance(items, Mapping)
    assert len(items) == 3
    assert list(items) == ["milk", "eggs", "soap"]
    assert "eggs" in items and "yoghurt" not in items
    assert items.get("yoghurt") is None
    assert items.get("yoghurt", SHOP) is SHOP
    with pytest.raises(KeyError):
        items["yoghurt"]
    assert items["milk"] is items["milk"]  # made once, then kept
    assert dict(items.items()) == {"milk": MILK, "eggs": EGGS, "soap": SOAP}
    assert list(items.values()) == [MILK, EGGS, SOAP]
    assert items == {"milk": MILK, "eggs": EGGS, "soap": SOAP}
    with pytest.raises(TypeError):
        items["milk"] = SHOP  # type: ignore[index]


def test_category_links_are_a_read_only_mapping() -> None:
    links = parse_priors(encode_priors(shop_priors())).item_categories
    assert (len(links), list(links)) == (3, ["yoghurt", "butter", "sponge"])
    assert links["sponge"] == "home"
    assert "milk" not in links
    assert links.get("milk") is None


def test_priors_are_made_only_when_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[int] = []
    make = priors_module._column_prior

    def counted(columns: PriorColumns, row: int) -> ItemPrior:
        made.append(row)
        return make(columns, row)

    monkeypatch.setattr(priors_module, "_column_prior", counted)
    parsed = parse_priors(encode_priors(shop_priors()))
    assert made == []  # parsing built no ItemPrior
    assert "soap" in parsed.items and len(parsed.items) == 3 and list(parsed.items)
    assert made == []  # nor did `in`, len or iteration
    assert parsed.prior_for("soap") == SOAP
    assert parsed.prior_for("soap") is parsed.prior_for("soap")
    assert parsed.prior_for("butter") == DAIRY
    assert made == [2, 0]  # soap's row once, then the dairy category's


def test_parsed_mappings_are_checked_again_against_a_higher_floor() -> None:
    parsed = parse_priors(encode_priors(shop_priors()))
    same = dataclasses.replace(parsed, params=DueParams())
    assert same.items is parsed.items  # checked against min_buyers=10 already: kept lazy
    with pytest.raises(ValueError, match=r"items\['eggs'\]: 12 buyers, fewer than min_buyers=13"):
        dataclasses.replace(parsed, min_buyers=13, categories={})
    with pytest.raises(ValueError, match=r"item_categories\['yoghurt'\]: unknown category 'dairy'"):
        dataclasses.replace(parsed, categories={"home": HOME})


@pytest.mark.parametrize(
    "change",
    [
        _set("items", "level", 0, value="x" * 100_000),
        _set("shop", "repeat_probability", value="x" * 100_000),
        _set("params", "x" * 100_000, value=1.0),
    ],
    ids=["column", "shop", "params"],
)
def test_a_huge_bad_value_is_cut_short_in_the_message(
    change: Callable[[dict[str, Any]], None],
) -> None:
    with pytest.raises(FormatError) as caught:
        parse_priors(mutated(change))
    assert "'xxx" in str(caught.value)
    assert len(str(caught.value)) < 300
