"""`facetwo demo`: the whole journey, for real, on a built-in sample shop.

backend: generate shop -> train -> export -> sign -> publish -> serve on loopback
device:  fetch -> verify -> record private events (an encrypted store file) -> recommend with
         reasons -> reorder shortcuts -> export and forget -> refuse tampering
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TextIO

from client_sdk import Recommender, Updater, generate_store_key
from client_sdk.bundle import MODEL_FILE, BundleCatalog
from client_sdk.errors import BundleError, HttpStatusError
from client_sdk.updater import HttpFetcher
from model_export.signing import load_private_key, write_key_pair

from .app import create_app
from .auth import hash_token
from .config import ServerConfig
from .keys import create_keys, online_keys_dir
from .pipeline import build_bundle
from .publish_client import publish_bundle_over_http
from .registry import Registry
from .reorder_tuning import TuningConfig
from .sample_store import generate_sample_store
from .training import TrainingConfig
from .tuf_repo import OnlineKeys
from .wsgi import start_service

# A small grid keeps the demo quick; `facetwo build` tunes the reorder blending on the full one.
_DEMO_TRAINING = TrainingConfig(validation_folds=1)
"""One validation split instead of three pooled ones: the demo shows the whole flow in seconds;
`facetwo build` keeps the full search."""
_DEMO_REORDER_TUNING = TuningConfig(
    max_users=400,
    prior_strengths=(1.0, 4.0, 16.0),
    own_scales=(0.5,),
    spread_scales=(0.25, 1.0),
    continuation_strengths=(1.0, 10.0),
    irregular_shares=(0.05, 0.2),
)
# (category word, days ago, quantity): a shopper's pantry over the last three months.
_PANTRY = (
    ("coffee", (57, 43, 28, 15), 1),
    ("pet food", (92, 61, 31), 2),
    ("cleaning", (40, 3), 1),
)


class _LoggingFetcher:
    """Shows what the device sends: the only traffic is public GETs for bundle files."""

    def __init__(self, inner: HttpFetcher) -> None:
        self._inner = inner
        self.requests: list[tuple[str, str]] = []

    def fetch(self, url: str, *, max_bytes: int) -> bytes:
        try:
            data = self._inner.fetch(url, max_bytes=max_bytes)
        except HttpStatusError as exc:
            self.requests.append((url, f"HTTP {exc.status_code}"))
            raise
        self.requests.append((url, f"{len(data):,} bytes"))
        return data


class _Narrator:
    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._started = time.perf_counter()
        self._step = 0

    def step(self, title: str) -> None:
        self._step += 1
        elapsed = time.perf_counter() - self._started
        self._out.write(f"\n[{self._step}] {title}   (t={elapsed:.1f}s)\n")
        self._out.flush()

    def say(self, text: str) -> None:
        self._out.write(f"    {text}\n")
        self._out.flush()

    def elapsed(self) -> float:
        return time.perf_counter() - self._started


@contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="facetwo-demo-") as tmp:
        yield Path(tmp)


def run_demo(*, workdir: Path | None = None, out: TextIO | None = None) -> int:
    """Run the demo; return 0 when every step behaved as it should.

    Raises:
        ServerError, ClientError, ExportError: a step failed (the CLI reports it).
    """
    n = _Narrator(out or sys.stdout)
    with _workdir(workdir) as root:
        for stale in ("shop", "keys", "bundle", "registry", "device", "app-data", "tampered"):
            shutil.rmtree(root / stale, ignore_errors=True)
        n.step("Backend: generating a sample shop (deterministic, nothing downloaded)")
        shop = generate_sample_store(root / "shop")
        n.say(f"interactions: {shop.interactions}")
        n.say(f"catalog:      {shop.catalog}")

        n.step("Backend: creating the signing keys (bundle key + TUF root and online roles)")
        online = online_keys_dir(root / "keys")
        registry = Registry(root / "registry", keys=OnlineKeys(online))
        keys = create_keys(root / "keys", registry)
        public_key = online / "signing.pub"
        n.say(f"bundle key {public_key.name}: devices trust it for the bundle's own signature")
        n.say(f"TUF root v{keys.root_version} ({keys.root_path.name}): the app's trust anchor")

        n.step("Backend: training on pseudonymous logs, exporting to ONNX, signing the bundle")
        report = build_bundle(
            shop.interactions,
            root / "bundle",
            signing_keys=[load_private_key(online / "signing.key")],
            catalog_path=shop.catalog,
            model_version=1,
            config=_DEMO_TRAINING,
            progress=n.say,
            reorder_priors=_DEMO_REORDER_TUNING,
        )

        n.step("Backend: serving the registry on loopback and publishing over its admin API")
        token = secrets.token_urlsafe(32)  # the admin's bearer token; only its hash is kept
        config = ServerConfig(
            data_dir=root / "registry",
            keys_dir=online,
            admin_token_sha256=frozenset({hash_token(token)}),
        )
        with start_service(create_app(config)) as service:
            n.say(f"registry service (waitress) at {service.url}")
            release = publish_bundle_over_http(report.bundle_dir, service.url, token=token)
            n.say(
                f"published v{release['model_version']} on {release['channel']}: files uploaded "
                "by sha256, then released with freshly signed TUF metadata in one transaction"
            )
            n.step("Device: updating through TUF (python-tuf ngclient; no identifiers sent)")
            fetcher = _LoggingFetcher(HttpFetcher())
            updater = Updater(
                service.url,
                root / "device",
                trusted_keys=[public_key],
                trusted_root=keys.root_path,
                fetcher=fetcher,
            )
            result = updater.update()
            for url, answer in fetcher.requests:
                n.say(f"GET {url.removeprefix(service.url)}  ({answer})")
            n.say("the same requests for every device: no id, cookie, history or per-user URL")
            n.say(
                f"installed model v{result.installed_version}: TUF signatures, versions and "
                "expiry, the bundle's own signature, and the size and sha256 of every file checked "
                "before anything was parsed"
            )
        n.say("service stopped")
        _device_session(n, result.bundle_dir, public_key, root / "app-data" / "shopper.db")
        _tampering(n, result.bundle_dir, root, public_key)
        n.step(f"Done in {n.elapsed():.1f}s. Nothing the shopper did left the device.")
    return 0


def _device_session(n: _Narrator, bundle_dir: Path, public_key: Path, store: Path) -> None:
    n.step("Device: the shopper's private events, sealed in an encrypted store file")
    # A real app keeps this key in the OS keystore (`keyring_store_key()` on a desktop).
    key = generate_store_key()
    with Recommender.open(bundle_dir, trusted_keys=[public_key], store=store, store_key=key) as rec:
        n.say(f"store {store.parent.name}/{store.name}: every record AES-256-GCM sealed")
        story = _story(rec.catalog)
        for kind, item_id in story:
            rec.record(kind, item_id)
            n.say(f"record({kind!r}, {_title(rec, item_id)!r})")
        n.step("Device: recommendations scored on the device with onnxruntime")
        listed = rec.recommend(k=8)
        for rank, item in enumerate(listed, start=1):
            n.say(f"{rank}. {item.title}  [{item.score:.3f}]")
            n.say(f"     {item.reasons[0].text}")
        for reason in listed[0].reasons if listed else ():
            if reason.kind == "control":
                n.say(f"   shaped by: {reason.text}")
        _gift_mode(n, rec)
        _reorder_shortcuts(n, rec, story)
        _shoppers_data(n, rec, store)


def _gift_mode(n: _Narrator, rec: Recommender) -> None:
    n.step("Device: gift mode, learning nothing and ignoring the shopper's own history")
    rec.set_intent("gift")
    december = datetime(datetime.now(timezone.utc).year, 12, 12, 18, 0, tzinfo=timezone.utc)
    n.say("set_intent('gift'), shopping on a December evening:")
    gifts = rec.recommend(k=5, now=december)
    for rank, item in enumerate(gifts, start=1):
        n.say(f"{rank}. {item.title}  ({item.reasons[0].text})")
    for reason in gifts[0].reasons[1:] if gifts else ():
        n.say(f"    {reason.text}")
    rec.set_intent("for_me")


def _reorder_shortcuts(n: _Narrator, rec: Recommender, story: list[tuple[str, str]]) -> None:
    n.step("Device: reorder shortcuts, timed from the shopper's own purchases")
    now = datetime.now(timezone.utc).astimezone()
    bought: list[str] = []
    for word, ages, quantity in _PANTRY:
        item_id = _first_consumable(rec, word)
        if item_id is None:
            continue
        for age in ages:
            rec.record("purchase", item_id, quantity=quantity, at=now - timedelta(days=age))
        bought.append(item_id)
        days = ", ".join(str(age) for age in ages)
        n.say(f"bought {_title(rec, item_id)!r} x{quantity}, {days} days ago")
    n.say("rec.shortcuts(k=5), due first:")
    shortcuts = rec.shortcuts(k=5)
    for s in shortcuts:
        if s.due is not None:
            expected = f"{s.due.expected_date:%d %b}, confidence {s.due.confidence:.2f}"
            n.say(f"- {s.title} (expected {expected})")
            n.say(f"    {s.reason}")
    durables = [i for kind, i in story if kind == "purchase" and i not in bought]
    if durables:
        if durables[0] in {s.item_id for s in shortcuts}:  # pragma: no cover - must fail loudly
            raise RuntimeError("a durable bought once became a reorder shortcut")
        n.say(f"{_title(rec, durables[0])!r} was bought once and is durable: never a shortcut")
    due = next((s for s in shortcuts if s.due is not None), None)
    if due is None:
        return
    rec.dismiss(due.item_id, reason="bought_elsewhere")
    after = next(s for s in rec.shortcuts(k=5) if s.item_id == due.item_id)
    n.say(f'dismiss({due.title!r}, reason="bought_elsewhere") resets its clock:')
    n.say(f"    {after.reason}")
    if len(bought) > 1:
        payload = rec.reorder(bought[1])
        n.say(f"reorder({_title(rec, bought[1])!r}): the app orders the usual {payload.quantity:g}")
        n.say("    and the purchase is recorded, restarting the item's clock")


def _shoppers_data(n: _Narrator, rec: Recommender, store: Path) -> None:
    n.step("Device: the shopper's data is theirs to take or erase")
    text = rec.export_data()
    exported = json.loads(text)
    n.say(
        f"export_data(): {len(text):,} bytes of JSON: {len(exported['events'])} events, "
        f"{len(exported['dismissals'])} dismissal(s), shortcut settings, network ledger"
    )
    rec.forget()
    left = len(json.loads(rec.export_data())["events"])
    n.say(f"forget(): {left} events left, shortcuts() -> {rec.shortcuts()}")
    n.say(f"    erased records are overwritten in {store.name} and its WAL is truncated")


def _title(rec: Recommender, item_id: str) -> str:
    return rec.catalog.entries[rec.catalog.index[item_id]].title


def _first_consumable(rec: Recommender, word: str) -> str | None:
    for entry in rec.catalog.entries:
        if entry.consumable and word in entry.category.lower():
            return entry.item_id
    return None


def _story(catalog: BundleCatalog) -> list[tuple[str, str]]:
    """A camera buyer who also looked at coffee: picked from the catalog by category."""

    def first(word: str) -> str | None:
        for entry in catalog.entries:
            if word in entry.category.lower():
                return entry.item_id
        return None

    camera, coffee = first("camera"), first("coffee")
    story = []
    if camera:
        story += [("view", camera), ("purchase", camera)]
    if coffee:
        story.append(("view", coffee))
    return story or [("purchase", catalog.entries[0].item_id)]


def _tampering(n: _Narrator, bundle_dir: Path, root: Path, public_key: Path) -> None:
    n.step("Device: a tampered bundle is refused")
    tampered = root / "tampered"
    shutil.copytree(bundle_dir, tampered)
    model = bytearray((tampered / MODEL_FILE).read_bytes())
    model[len(model) // 2] ^= 0x01
    (tampered / MODEL_FILE).write_bytes(bytes(model))
    n.say("flipped one bit in model.onnx")
    try:
        Recommender.open(tampered, trusted_keys=[public_key])
    except BundleError as exc:
        n.say(f"refused: {type(exc).__name__}: {exc}")
    else:  # pragma: no cover - a demo that accepts tampering must fail loudly
        raise RuntimeError("a tampered bundle was accepted")
    foreign = root / "keys-attacker"
    shutil.rmtree(foreign, ignore_errors=True)
    attacker = write_key_pair(foreign)
    n.say("an attacker re-signs the manifest with their own key")
    shutil.copy(foreign / "signing.pub", tampered / "attacker.pub")
    from model_export.signing import sign_manifest

    manifest = (tampered / "manifest.json").read_bytes()
    (tampered / "manifest.sig").write_bytes(
        sign_manifest(manifest, [load_private_key(attacker.private_key)])
    )
    try:
        Recommender.open(tampered, trusted_keys=[public_key])
    except BundleError as exc:
        n.say(f"refused: {type(exc).__name__}: {exc}")
    else:  # pragma: no cover
        raise RuntimeError("a bundle signed by an untrusted key was accepted")
