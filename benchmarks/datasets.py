"""Converters from the shared developer datasets to the interactions CSV format.

The datasets live beside the repository in `../shared/datasets/` and may not be redistributed:
they are converted into a temporary directory at run time, never copied into the project.
"""

from __future__ import annotations

import csv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"
ML_100K = DATASETS / "ml-100k" / "u.data"
COMPLETE_JOURNEY = DATASETS / "completejourney_sample" / "transactions_sample.csv"
COMPLETE_JOURNEY_PRODUCTS = DATASETS / "completejourney_sample" / "products.csv"


def convert_ml_100k(out: Path, source: Path = ML_100K) -> Path:
    """MovieLens 100K `u.data` (user, item, rating, unix time): every rating is a positive."""
    with source.open(encoding="latin-1") as src, out.open("w", newline="") as dst:
        writer = csv.writer(dst)
        writer.writerow(["user_id", "item_id", "timestamp"])
        for line in src:
            user, item, _rating, stamp = line.rstrip("\n").split("\t")
            writer.writerow([user, item, stamp])
    return out


def convert_complete_journey(out: Path, source: Path = COMPLETE_JOURNEY) -> Path:
    """Dunnhumby Complete Journey receipt lines: household -> user, product -> item, purchases.

    Timestamps are local New York time without an offset; they are written as naive ISO
    date-times (read as UTC: only their order and spacing matter here). Quantity 0 lines (416 of
    75,000: returns or fuel artefacts) count as one unit.
    """
    with source.open(newline="") as src, out.open("w", newline="") as dst:
        reader = csv.DictReader(src)
        writer = csv.writer(dst)
        writer.writerow(["user_id", "item_id", "timestamp", "event", "quantity"])
        for row in reader:
            quantity = row["quantity"] if row["quantity"] not in ("", "0") else "1"
            stamp = row["transaction_timestamp"].replace(" ", "T")
            writer.writerow([row["household_id"], row["product_id"], stamp, "purchase", quantity])
    return out


def convert_complete_journey_catalog(out: Path, source: Path = COMPLETE_JOURNEY_PRODUCTS) -> Path:
    """products.csv -> catalog CSV (category = department / product_category)."""
    with source.open(newline="") as src, out.open("w", newline="") as dst:
        reader = csv.DictReader(src)
        writer = csv.writer(dst)
        writer.writerow(["item_id", "title", "category"])
        for row in reader:
            title = " ".join(
                p for p in (row["brand"], row["product_type"], row["package_size"]) if p
            )
            category = f"{row['department']} / {row['product_category']}"
            writer.writerow([row["product_id"], title or row["product_id"], category])
    return out
