"""Tests for server/data.py: known answers, a table of bad inputs, and round-trip properties."""

from __future__ import annotations

import csv
import io
import logging
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.data import (
    EVENT_KINDS,
    Catalog,
    CatalogItem,
    Interactions,
    load_catalog,
    load_interactions,
)
from server.errors import DataError

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
HEADER = "user_id,item_id,timestamp\n"
FULL_HEADER = "user_id,item_id,timestamp,event,quantity,weight\n"
CATALOG_HEADER = "item_id,title,category,group,consumable,price\n"
VIEW, CART, PURCHASE = 0, 1, 2


def write(tmp_path: Path, text: str | bytes, name: str = "f.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", newline="")
    else:
        path.write_bytes(text)
    return path


# --- known answers ---------------------------------------------------------------------------


def test_golden_interactions() -> None:
    path = DATA_DIR / "interactions_small.csv"
    data = load_interactions(path)
    assert data.source == str(path)
    assert len(data) == 4
    assert data.users == ("u1", "u2", "u3")
    assert data.items == ("sku-1", "sku-2")
    assert data.user.tolist() == [0, 1, 0, 2]
    assert data.item.tolist() == [0, 1, 1, 0]
    assert data.timestamp.tolist() == [1741046400, 1741082400, 1741100000, 1741082400]
    assert data.event.tolist() == [PURCHASE, VIEW, CART, PURCHASE]
    assert data.quantity.tolist() == [2.0, 1.0, 1.0, 3.0]
    assert data.weight.tolist() == [1.0, 0.5, 1.0, 2.5]
    assert EVENT_KINDS == ("view", "cart", "purchase")
    assert repr(data) == f"Interactions(4 rows, 3 users, 2 items, source={str(path)!r})"


def test_defaults_dtypes_and_read_only(tmp_path: Path) -> None:
    data = load_interactions(str(write(tmp_path, HEADER + "a,x,0\nb,x,1\n")))
    assert data.user.dtype == np.int64 and data.item.dtype == np.int64
    assert data.timestamp.dtype == np.int64 and data.event.dtype == np.int8
    assert data.quantity.dtype == np.float64 and data.weight.dtype == np.float64
    assert data.event.tolist() == [PURCHASE, PURCHASE]
    assert data.quantity.tolist() == [1.0, 1.0] and data.weight.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="read-only"):
        data.user[0] = 5


def test_gift_column_and_the_rows_without_gifts(tmp_path: Path) -> None:
    text = "user_id,item_id,timestamp,gift\na,x,0,\na,y,1,yes\nb,y,2,0\nb,z,3,TRUE\n"
    data = load_interactions(write(tmp_path, text))
    assert data.gift is not None
    assert data.gift.tolist() == [False, True, False, True]
    own = data.without_gifts()
    assert (own.users, own.items) == (data.users, data.items)  # the same id coding
    assert [data.items[i] for i in own.item.tolist()] == ["x", "y"]
    assert own.timestamp.tolist() == [0, 2]
    assert own.gift is None
    with pytest.raises(ValueError, match="read-only"):
        own.user[0] = 1
    plain = load_interactions(write(tmp_path, HEADER + "a,x,0\n", "plain.csv"))
    assert plain.gift is None
    assert plain.without_gifts() is plain


def test_bom_crlf_blank_lines_and_stripped_ids(tmp_path: Path) -> None:
    text = "\ufeffUser_ID , item_id,timestamp\r\n\r\nu1,i1,0\r\n  \r\n u1 , i2 ,1741100000.9\r\n"
    data = load_interactions(write(tmp_path, text.encode("utf-8")))
    assert data.users == ("u1",)
    assert data.items == ("i1", "i2")
    assert data.user.tolist() == [0, 0]
    assert data.timestamp.tolist() == [0, 1741100000]


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("2025-03-04", 1741046400),
        ("2025-03-04T10:00:00", 1741082400),
        ("2025-03-04 10:00:00", 1741082400),
        ("2025-03-04T10:00:00Z", 1741082400),
        ("2025-03-04T10:00:00z", 1741082400),
        ("2025-03-04T10:00:00.750Z", 1741082400),
        ("2025-03-04T12:00:00+02:00", 1741082400),
        ("2025-03-04T04:30:00.123456-05:30", 1741082400),
        ("1741082400", 1741082400),
        ("1741082400.5", 1741082400),
        (" 1741082400 ", 1741082400),
        ("0", 0),
        ("1970-01-01T01:00:00+01:00", 0),
        ("2100-12-31T23:59:59Z", 4133980799),
    ],
)
def test_timestamp_forms(tmp_path: Path, raw: str, seconds: int) -> None:
    data = load_interactions(write(tmp_path, HEADER + f'u,i,"{raw}"\n'))
    assert data.timestamp.tolist() == [seconds]


def test_events_are_case_insensitive_and_default_to_purchase(tmp_path: Path) -> None:
    text = "user_id,item_id,timestamp,event\nu,i,0, VIEW \nu,i,0,Cart\nu,i,0,\nu,i,0,purchase\n"
    data = load_interactions(write(tmp_path, text))
    assert data.event.tolist() == [VIEW, CART, PURCHASE, PURCHASE]


def test_quoted_fields_and_unknown_columns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = 'store,user_id,item_id,timestamp\n"a, b",u1,"multi\nline",0\nx,u2,"say ""hi""",1\n'
    with caplog.at_level(logging.DEBUG, logger="server.data"):
        data = load_interactions(write(tmp_path, text))
    assert data.items == ("multi\nline", 'say "hi"')
    assert "ignoring unknown column(s) ['store']" in caplog.text


def test_interactions_checks_its_arrays() -> None:
    ints = np.zeros(2, dtype=np.int64)
    floats = np.ones(2)
    with pytest.raises(ValueError, match=r"Interactions\.event: expected shape \(2,\) int8"):
        Interactions(("u",), ("i",), ints, ints, ints, ints, floats, floats, "x")  # type: ignore[arg-type]


def test_golden_catalog() -> None:
    path = DATA_DIR / "catalog_small.csv"
    catalog = load_catalog(path)
    assert catalog.source == str(path)
    assert len(catalog) == 3
    assert catalog.items == (
        CatalogItem("sku-1", "Oat milk 1 l", "dairy-free", "oat-milk", True, 2.49),
        CatalogItem("sku-2", "Coffee beans, 500 g", "coffee", "sku-2", False, None),
        CatalogItem("sku-3", "Oat milk 6 x 1 l", "dairy-free", "oat-milk", True, 13.5),
    )
    assert catalog.get("sku-2") == catalog.items[1]
    assert catalog.get("nope") is None


def test_catalog_kind_column(tmp_path: Path) -> None:
    text = "item_id,title,kind\nc1,Compact Camera, camera \nc2,DSLR Camera,camera\nb,Bag,\n"
    catalog = load_catalog(write(tmp_path, text))
    assert [i.kind for i in catalog.items] == ["camera", "camera", ""]


def test_catalog_minimal_columns_and_booleans(tmp_path: Path) -> None:
    text = "title,item_id,consumable\nA, a ,YES\nB,b,0\nC,c,False\nD,d,\n"
    catalog = load_catalog(write(tmp_path, text))
    assert [(i.item_id, i.group, i.consumable, i.price) for i in catalog.items] == [
        ("a", "a", True, None),
        ("b", "b", False, None),
        ("c", "c", False, None),
        ("d", "d", False, None),
    ]


def test_catalog_refuses_duplicate_ids_when_built_directly() -> None:
    with pytest.raises(ValueError, match="more than once"):
        Catalog((CatalogItem("a", "A"), CatalogItem("a", "B")), "x")


# --- bad inputs: each names file:line and field ---------------------------------------------

BAD_INTERACTIONS = [
    # (id, file text, line, fragment that must appear after "path:line: ")
    ("missing-column", "user_id,item_id\nu,i\n", 1, "missing required column(s) timestamp"),
    ("no-header", "u1,i1,0\n", 1, "found: 'u1', 'i1', '0'"),
    ("duplicate-column", "user_id,item_id,timestamp,User_id\n", 1, "duplicate column 'user_id'"),
    ("too-few-fields", HEADER + "u,i,0\nu,i\n", 3, "expected 3 fields, found 2"),
    ("too-many-fields", HEADER + "u,i,0,x\n", 2, "expected 3 fields, found 4"),
    ("empty-user", HEADER + ",i,0\n", 2, "field 'user_id': empty id"),
    ("blank-item", HEADER + "u,   ,0\n", 2, "field 'item_id': empty id"),
    ("long-id", HEADER + "u," + "i" * 257 + ",0\n", 2, "field 'item_id': id has 257 characters"),
    ("bad-event", FULL_HEADER + "u,i,0,buy,,\n", 2, "field 'event': unknown event 'buy'"),
    ("zero-quantity", FULL_HEADER + "u,i,0,,0,\n", 2, "field 'quantity': expected a finite"),
    ("negative-quantity", FULL_HEADER + "u,i,0,,-1,\n", 2, "field 'quantity'"),
    ("nan-quantity", FULL_HEADER + "u,i,0,,nan,\n", 2, "field 'quantity'"),
    ("text-quantity", FULL_HEADER + "u,i,0,,two,\n", 2, "field 'quantity'"),
    ("underscore-quantity", FULL_HEADER + "u,i,0,,1_0,\n", 2, "field 'quantity'"),
    ("inf-weight", FULL_HEADER + "u,i,0,,,inf\n", 2, "field 'weight'"),
    ("zero-weight", FULL_HEADER + "u,i,0,,,0\n", 2, "field 'weight'"),
    ("bad-gift", "user_id,item_id,timestamp,gift\nu,i,0,maybe\n", 2, "field 'gift': expected"),
    ("empty-timestamp", HEADER + "u,i,\n", 2, "field 'timestamp': empty timestamp"),
    ("text-timestamp", HEADER + "u,i,nope\n", 2, "field 'timestamp': cannot parse 'nope'"),
    ("bad-month", HEADER + "u,i,2025-13-01\n", 2, "field 'timestamp': cannot parse"),
    ("before-1970", HEADER + "u,i,1969-12-31T23:59:59Z\n", 2, "field 'timestamp'"),
    ("offset-before-1970", HEADER + "u,i,1970-01-01T00:30:00+01:00\n", 2, "field 'timestamp'"),
    ("after-2100", HEADER + "u,i,2101-01-01\n", 2, "field 'timestamp'"),
    ("negative-unix", HEADER + "u,i,-1\n", 2, "field 'timestamp': '-1' is not Unix seconds"),
    ("milliseconds", HEADER + "u,i,1741100000000\n", 2, "must be in seconds"),
    ("nan-timestamp", HEADER + "u,i,nan\n", 2, "field 'timestamp': cannot parse 'nan'"),
    ("inf-timestamp", HEADER + "u,i,-inf\n", 2, "field 'timestamp': cannot parse '-inf'"),
    ("underscore-unix", HEADER + "u,i,1_741_100_000\n", 2, "field 'timestamp': cannot parse"),
    ("after-blank-lines", HEADER + "u,i,0\n\n\nu,i,x\n", 5, "field 'timestamp'"),
    ("after-multiline", HEADER + 'u,"a\nb\r\nc",0\nu,i,x\n', 5, "field 'timestamp'"),
    ("multiline-record", HEADER + 'u,i,"2025-\n03-04"\n', 2, "field 'timestamp'"),
    ("bad-quoting", HEADER + 'u,"i"x,0\n', 2, "malformed CSV"),
    ("unterminated-quote", HEADER + 'u,"i,0\nu,i,0\n', 2, "malformed CSV"),
]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_INTERACTIONS],
)
def test_bad_interactions(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DataError) as info:
        load_interactions(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert fragment in message


BAD_CATALOGS = [
    ("missing-title", "item_id,name\na,A\n", 1, "missing required column(s) title"),
    ("duplicate-id", CATALOG_HEADER + "a,A,,,,\nb,B,,,,\n a ,C,,,,\n", 4, "first on line 2"),
    ("empty-id", CATALOG_HEADER + ",A,,,,\n", 2, "field 'item_id': empty id"),
    ("empty-title", CATALOG_HEADER + "a, ,,,,\n", 2, "field 'title': empty title"),
    ("negative-price", CATALOG_HEADER + "a,A,,,,-1\n", 2, "field 'price': expected a finite"),
    ("nan-price", CATALOG_HEADER + "a,A,,,,nan\n", 2, "field 'price'"),
    ("bad-consumable", CATALOG_HEADER + "a,A,,,maybe,\n", 2, "field 'consumable'"),
    ("wrong-width", CATALOG_HEADER + "a,A\n", 2, "expected 6 fields, found 2"),
]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_CATALOGS],
)
def test_bad_catalogs(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DataError) as info:
        load_catalog(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert fragment in message


def test_price_zero_is_allowed(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, "item_id,title,price\na,A,0\n"))
    assert catalog.items[0].price == 0.0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty file"),
        ("\n\r\n  \n", "empty file"),
        ("\ufeff", "empty file"),
        (HEADER, "no interactions in"),
        (HEADER + "\n\n", "no interactions in"),
    ],
)
def test_empty_files(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=re.escape(fragment)) as info:
        load_interactions(path)
    assert str(path) in str(info.value)


def test_empty_catalog(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no items in"):
        load_catalog(write(tmp_path, "item_id,title\n"))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'nope.csv'}: no such file")):
        load_interactions(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path}: is a directory")):
        load_catalog(tmp_path)


def test_non_utf8_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, (HEADER + "u,i,0\r\nu,caf").encode() + b"\xe9,0\nu,i,0\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:3: not valid UTF-8")):
        load_interactions(path)


def test_limits(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "u,i,0\nu,i,1\nu,i,2\n")
    assert len(load_interactions(path, max_rows=3)) == 3
    with pytest.raises(DataError, match=re.escape(f"{path}:4: more than max_rows=2")):
        load_interactions(path, max_rows=2)
    catalog = write(tmp_path, "item_id,title\na,A\nb,B\n", "c.csv")
    with pytest.raises(DataError, match=re.escape(f"{catalog}:3: more than max_items=1")):
        load_catalog(catalog, max_items=1)
    with pytest.raises(ValueError, match="max_rows must be >= 1"):
        load_interactions(path, max_rows=0)


# --- properties -------------------------------------------------------------------------------

_ID_CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
_IDS = st.text(_ID_CHARS, min_size=1, max_size=12).filter(lambda s: s == s.strip() and bool(s))
_SECONDS = st.integers(min_value=0, max_value=4_133_980_799)
_ROWS = st.lists(
    st.tuples(
        _IDS,
        _IDS,
        _SECONDS,
        st.sampled_from(["unix", "iso-z", "iso-offset", "naive"]),
        st.sampled_from([*EVENT_KINDS, ""]),
        st.floats(min_value=1e-3, max_value=1e6),
    ),
    min_size=1,
    max_size=30,
)
_Row = tuple[str, str, int, str, str, float]
_OFFSET = timezone(-timedelta(hours=5, minutes=30))


def _format_time(seconds: int, form: str) -> str:
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    if form == "unix":
        return str(seconds)
    if form == "iso-z":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if form == "naive":
        return moment.replace(tzinfo=None).isoformat(sep=" ")
    return moment.astimezone(_OFFSET).isoformat()


def _csv_text(rows: list[_Row]) -> list[str]:
    """Header and one serialized record per row (CRLF, quoted where needed)."""
    out = io.StringIO()
    writer = csv.writer(out)
    parts = []
    writer.writerow(["user_id", "item_id", "timestamp", "event", "quantity"])
    for user, item, seconds, form, event, quantity in rows:
        parts.append(out.getvalue())
        out.seek(0)
        out.truncate()
        writer.writerow([user, item, _format_time(seconds, form), event, repr(quantity)])
    parts.append(out.getvalue())
    return parts


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=_ROWS, bom=st.booleans())
def test_round_trip(tmp_path: Path, rows: list[_Row], bom: bool) -> None:
    path = write(tmp_path, ("\ufeff" if bom else "") + "".join(_csv_text(rows)))
    data = load_interactions(path)
    assert len(data) == len(rows)
    assert data.users == tuple(dict.fromkeys(r[0] for r in rows))
    assert data.items == tuple(dict.fromkeys(r[1] for r in rows))
    assert [data.users[c] for c in data.user] == [r[0] for r in rows]
    assert [data.items[c] for c in data.item] == [r[1] for r in rows]
    assert data.timestamp.tolist() == [r[2] for r in rows]
    assert [EVENT_KINDS[c] for c in data.event] == [r[4] or "purchase" for r in rows]
    assert data.quantity.tolist() == [r[5] for r in rows]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=_ROWS, data=st.data())
def test_error_line_counts_physical_lines(
    tmp_path: Path, rows: list[_Row], data: st.DataObject
) -> None:
    bad = data.draw(st.integers(min_value=0, max_value=len(rows) - 1))
    parts = _csv_text(rows)
    head, _, _ = parts[bad + 1].rpartition("," + repr(rows[bad][5]))
    parts[bad + 1] = head + ",-1\r\n"
    before = "".join(parts[: bad + 1])
    line = len(re.findall(r"\r\n|\r|\n", before)) + 1
    path = write(tmp_path, "".join(parts))
    with pytest.raises(DataError) as info:
        load_interactions(path)
    assert str(info.value).startswith(f"{path}:{line}: field 'quantity'")
