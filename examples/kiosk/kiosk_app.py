"""An in-store kiosk: a touch-friendly page served on the kiosk machine, one visitor at a time.

    python examples/kiosk/kiosk_app.py BUNDLE_DIR signing.pub [--port 8000] [--idle-timeout 120]
        [--stocked stocked.txt] [--exclude ID ...]

then open http://127.0.0.1:8000 in the kiosk's browser (full screen). The page browses the
catalogue, shows what is popular now (this month, this time of day), what people who bought the
tapped item also bought, and why each suggestion is there. Every tap re-ranks at once.

The visitor's taps live only in this process's memory (`Recommender.ephemeral`): nothing is
written to disk, and the session is wiped by "End session", after `--idle-timeout` seconds
without a tap, and when the process exits. The server binds 127.0.0.1 only and accepts state
changes only as JSON, so another web page shown on the kiosk cannot post taps to it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from flask import Flask, abort, jsonify, request, send_from_directory
from flask.typing import ResponseReturnValue

from client_sdk import BundleError, Recommendation, Recommender
from client_sdk.kiosk import KioskRules, KioskSession

STATIC = Path(__file__).resolve().parent / "static"
FOR_YOU = 6
ALSO_BOUGHT = 6
MAX_BROWSE = 60


def _card(item: Recommendation) -> dict[str, Any]:
    return {
        "id": item.item_id,
        "title": item.title,
        "why": item.reasons[0].text,
        "reasons": [r.text for r in item.reasons],
    }


def create_kiosk_app(session: KioskSession) -> Flask:
    """The kiosk's web app around one ephemeral session (the app never closes it)."""
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 4096
    catalog = session.catalog
    categories = sorted({e.category for e in catalog.entries if e.category})

    def item_id_from_body() -> str:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("item_id"), str):
            abort(400, description='expected a JSON body {"item_id": "..."}')
        item_id: str = body["item_id"]
        if item_id not in catalog.index or not session.rules.allows(item_id):
            abort(404, description="no such item in this store")
        return item_id

    def state(in_view: str | None = None) -> dict[str, Any]:
        for_you = session.recommend(k=FOR_YOU, in_view=in_view)
        also = session.also_bought(in_view, k=ALSO_BOUGHT) if in_view else []
        view = catalog.entries[catalog.index[in_view]] if in_view else None
        return {
            "session": session.generation,
            "taps": len(_events(session)),
            "idle_timeout": session.idle_timeout,
            "in_view": {"id": view.item_id, "title": view.title} if view else None,
            "for_you": [_card(r) for r in for_you],
            "also_bought": [_card(r) for r in also],
        }

    @app.before_request
    def json_only_for_changes() -> None:
        if request.method == "POST" and not request.is_json:
            abort(415, description="state changes are JSON only")

    @app.get("/")
    def index() -> ResponseReturnValue:
        return send_from_directory(STATIC, "index.html")

    @app.get("/static/<path:name>")
    def static_file(name: str) -> ResponseReturnValue:
        return send_from_directory(STATIC, name)

    @app.get("/api/catalog")
    def browse() -> ResponseReturnValue:
        category = request.args.get("category", "")
        word = request.args.get("q", "").lower()[:100]
        found = [
            {"id": e.item_id, "title": e.title, "category": e.category}
            for e in catalog.entries
            if session.rules.allows(e.item_id)
            and (not category or e.category == category)
            and (not word or word in e.title.lower())
        ]
        return jsonify({"categories": categories, "items": found[:MAX_BROWSE]})

    @app.get("/api/state")
    def current() -> ResponseReturnValue:
        return jsonify(state())

    @app.post("/api/tap")
    def tap() -> ResponseReturnValue:
        item_id = item_id_from_body()
        session.record("view", item_id)
        return jsonify(state(in_view=item_id))

    @app.post("/api/not-interested")
    def not_interested() -> ResponseReturnValue:
        session.dismiss(item_id_from_body())
        return jsonify(state())

    @app.post("/api/end")
    def end() -> ResponseReturnValue:
        session.end_session()
        return jsonify(state())

    @app.after_request
    def no_caching(response: Any) -> Any:
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return app


def _events(session: KioskSession) -> list[Any]:
    events: list[Any] = json.loads(session.export_data())["events"]
    return events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bundle", type=Path, help="bundle directory")
    parser.add_argument("public_key", type=Path, help="trusted signing.pub")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--idle-timeout", type=float, default=120.0, help="seconds")
    parser.add_argument("--stocked", type=Path, help="file of the item ids this store stocks")
    parser.add_argument("--exclude", action="append", default=[], help="an item never shown")
    args = parser.parse_args(argv)
    stocked = None
    if args.stocked is not None:
        stocked = frozenset(args.stocked.read_text("utf-8").split())
    rules = KioskRules(stocked=stocked, excluded=frozenset(args.exclude))
    try:
        session = Recommender.ephemeral(
            args.bundle,
            trusted_keys=[args.public_key],
            idle_timeout=args.idle_timeout,
            rules=rules,
        )
    except BundleError as exc:
        print(f"refusing the bundle: {exc}", file=sys.stderr)
        return 1
    with session:
        app = create_kiosk_app(session)
        print(f"kiosk on http://127.0.0.1:{args.port} (Ctrl-C stops)", file=sys.stderr)
        try:
            import waitress
        except ImportError:  # the Flask development server is enough on a kiosk
            app.run(host="127.0.0.1", port=args.port)
        else:
            waitress.serve(app, host="127.0.0.1", port=args.port, threads=4)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
