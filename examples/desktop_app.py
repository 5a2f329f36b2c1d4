"""A terminal shopping app embedding the facetwo SDK, with the shopper's encrypted store.

    python examples/desktop_app.py BUNDLE_DIR signing.pub [--store shopper.db] [--key-file K]

Type `help` at the prompt. Everything the shopper does is sealed in one encrypted file on this
computer (`--store`) and never leaves it. The store key lives in the desktop keyring (the
optional `keyring` package) or, with `--key-file`, in a file of your choosing (created with mode
0600 on first use; keep it apart from the store). Only the client SDK is used.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from client_sdk import (
    BundleError,
    ClientError,
    Recommendation,
    Recommender,
    StoreError,
    generate_store_key,
    keyring_store_key,
)

HELP = """commands:
  items [WORD]                 find items (by title or id)
  view ID | cart ID | search ID   record what you looked at
  buy ID [QTY]                 record a purchase
  rec [K]                      recommendations, each with its reason
  look ID [K]                  recommendations while looking at an item
  dismiss ID [bought_elsewhere]   stop suggesting it and its variants
  undismiss ID                 take a dismissal back
  shortcuts [K]                reorder shortcuts, due first
  pause | resume               stop / restart learning
  gift | forme                 shop for someone else (nothing learned) / for yourself
  export [FILE]                everything held about you, as JSON
  forget [ID]                  erase one item's data, or everything
  quit"""


def store_key(key_file: Path | None) -> bytes:
    """The store key: from `key_file` (created 0600 on first use) or the desktop keyring.

    Raises:
        StoreError: no keyring and no key file, or a key file that is not 32 bytes.
    """
    if key_file is None:
        return keyring_store_key(service="facetwo-desktop-example")
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(generate_store_key())
    key = key_file.read_bytes()
    if len(key) != 32:
        raise StoreError(f"{key_file}: expected a 32-byte key, found {len(key)} bytes")
    return key


def show(items: list[Recommendation], out: TextIO) -> None:
    if not items:
        print("  (nothing to suggest)", file=out)
    for rank, item in enumerate(items, start=1):
        print(f"  {rank:2}. {item.title} [{item.item_id}]  ({item.reasons[0].text})", file=out)


class App:
    """One command line at a time against an open Recommender."""

    def __init__(self, rec: Recommender, out: TextIO) -> None:
        self.rec = rec
        self.out = out
        self.commands: dict[str, Callable[[list[str]], None]] = {
            "help": lambda _args: print(HELP, file=out),
            "items": self.items,
            "view": lambda a: self.record("view", a),
            "cart": lambda a: self.record("cart", a),
            "search": lambda a: self.record("search", a),
            "buy": lambda a: self.record("purchase", a),
            "rec": lambda a: show(rec.recommend(k=int(a[0]) if a else 5), out),
            "look": lambda a: show(rec.recommend(k=int(a[1]) if a[1:] else 5, in_view=a[0]), out),
            "dismiss": self.dismiss,
            "undismiss": lambda a: self.say("undone" if rec.undismiss(a[0]) else "not dismissed"),
            "shortcuts": self.shortcuts,
            "pause": lambda _a: self.switch(rec.pause, "learning paused"),
            "resume": lambda _a: self.switch(rec.resume, "learning resumed"),
            "gift": lambda _a: self.switch(lambda: rec.set_intent("gift"), "gift: nothing learned"),
            "forme": lambda _a: self.switch(lambda: rec.set_intent("for_me"), "for yourself"),
            "export": self.export,
            "forget": self.forget,
        }

    def say(self, text: str) -> None:
        print(f"  {text}", file=self.out)

    def switch(self, action: Callable[[], None], done: str) -> None:
        action()
        self.say(done)

    def run(self, lines: TextIO, prompt: bool) -> None:
        while True:
            if prompt:
                print("> ", end="", file=self.out, flush=True)
            line = lines.readline()
            if not line:
                return
            words = shlex.split(line)
            if not words:
                continue
            if words[0] in ("quit", "exit"):
                return
            command = self.commands.get(words[0])
            if command is None:
                self.say(f"unknown command {words[0]!r}; type help")
                continue
            try:
                command(words[1:])
            except IndexError:
                self.say(f"{words[0]}: an item id is missing; type help")
            except (ValueError, TypeError, ClientError) as exc:
                self.say(f"{words[0]}: {exc}")

    def items(self, args: list[str]) -> None:
        word = " ".join(args).lower()
        found = [e for e in self.rec.catalog.entries if word in f"{e.title} {e.item_id}".lower()]
        for entry in found[:20]:
            self.say(f"{entry.item_id}  {entry.title}")
        if len(found) > 20:
            self.say(f"... and {len(found) - 20} more")

    def record(self, kind: str, args: list[str]) -> None:
        quantity = float(args[1]) if args[1:] else 1.0
        self.rec.record(kind, args[0], quantity=quantity)
        self.say(f"recorded {kind} of {args[0]} (on this computer only)")

    def dismiss(self, args: list[str]) -> None:
        reason = args[1] if args[1:] else "not_interested"
        self.rec.dismiss(args[0], reason=reason)
        self.say(f"{args[0]} and its variants will not be suggested again")

    def shortcuts(self, args: list[str]) -> None:
        found = self.rec.shortcuts(k=int(args[0]) if args else 5)
        if not found:
            self.say("(no reorder shortcuts yet)")
        for shortcut in found:
            pin = "pinned, " if shortcut.pinned else ""
            title = shortcut.title or shortcut.item_id
            self.say(f"{title} x{shortcut.usual_quantity:g}  ({pin}{shortcut.reason})")

    def export(self, args: list[str]) -> None:
        data = self.rec.export_data()
        if args:
            Path(args[0]).write_text(data + "\n", encoding="utf-8")
            self.say(f"exported to {args[0]}")
        else:
            print(data, file=self.out)

    def forget(self, args: list[str]) -> None:
        self.rec.forget(args[0] if args else None)
        self.say(f"erased {args[0]}" if args else "erased everything")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bundle", type=Path, help="bundle directory")
    parser.add_argument("public_key", type=Path, help="trusted signing.pub")
    parser.add_argument("--store", type=Path, default=Path("shopper.db"), help="encrypted store")
    parser.add_argument("--key-file", type=Path, help="store key file (default: the keyring)")
    args = parser.parse_args(argv)
    try:
        rec = Recommender.open(
            args.bundle,
            trusted_keys=[args.public_key],
            store=args.store,
            store_key=store_key(args.key_file),
        )
    except BundleError as exc:
        print(f"refusing the bundle: {exc}", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"cannot open the store: {exc}", file=sys.stderr)
        return 1
    with rec:
        print(f"model v{rec.model_version}, {len(rec.catalog)} items; type help", file=sys.stdout)
        App(rec, sys.stdout).run(sys.stdin, prompt=sys.stdin.isatty())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
