"""``augment generate``: sample codes -> G -> score with the stage-1 heads -> MI-filtered
shards in the feature-store format + ``manifest.parquet``.

This module checks the arguments and runs the loop; :mod:`augment.label_plan` says which
labels each shard holds, :mod:`augment.shard_make` produces a shard's arrays and
:mod:`augment.shard_write` writes it.

Shard ``k`` (a *slot*) has a fixed label plan; attempt ``a`` of it draws noise and text
codes from seeds derived from (seed, k, a), so a slot's content never depends on other
slots, on where the run stopped, or on the output dir. A shard is written under a temporary
name, renamed, and only then listed in the manifest (rewritten atomically every couple of
seconds and at the end): a killed run loses at most the shards not yet listed, and the same
command resumes.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


from mirage.featstore.errors import ConfigError
from mirage.featstore.runtime import Runtime
from mirage.featstore.store.location import Location, WriterLock, check_out_dir, is_remote, join

from mirage.augment import shards
from mirage.augment.checkpoint import GeneratorBundle, check_store_matches, load_checkpoint
from mirage.augment.config import GenerateConfig
from mirage.augment.counts import parse_count
from mirage.augment.label_plan import WHOLE_PLAN_MAX, LabelPlan
from mirage.augment.sampling import CodeSpec
from mirage.augment.seeding import check_seed, fixed_threads
from mirage.augment.shard_make import Shard, _forward, _score, make_shard  # noqa: F401  (augment.sampler uses these)
from mirage.augment.shard_write import shard_row_bytes
from mirage.augment.shard_write import write_shard as _write_shard  # a module global: tests stand in for it

log = logging.getLogger(__name__)

RUN_VERSION = 1
_WRITERS = 2  # shard writes in flight; writing, not generating, is the bottleneck
_COMMIT_EVERY_S = 2.0  # most seconds between manifest rewrites while shards are being written


@dataclass
class GenerateResult:
    manifest_path: str
    n_items: int
    n_shards: int
    n_rejected: int
    message: str
    n_requested: int = 0
    complete: bool = True
    shards: list[dict[str, Any]] = field(default_factory=list)


def generate(model_dir, out_dir, *, seed: int = 0, storage_options: dict | None = None, progress: bool | None = None,
             store=None, overwrite: bool = False, config: GenerateConfig | None = None, runtime: Runtime | None = None,
             **settings) -> GenerateResult:
    """Write about ``n`` synthetic items (``"4x"`` = 4 x the real training items, or a count).

    ``settings`` are :class:`augment.config.GenerateConfig`'s fields. Shards whose normalised
    MI score is below ``min_mi`` are not written; their slot is retried up to ``max_attempts``
    times with fresh noise. ``mi_band=(lo, hi)`` keeps only samples whose per-sample score
    lies in the band (redrawing up to ``max_rounds`` times to fill each label's quota).
    ``store`` (optional) is checked to have the model's dims. ``num_threads`` is fixed during
    generation so the bytes do not depend on the machine's default thread count. The settings
    come as ``config`` or as keywords, not both; ``runtime`` (:class:`featstore.runtime.Runtime`)
    carries the storage options and progress (or give ``storage_options`` / ``progress``).
    """
    from mirage.featstore.settings import config_or_keywords

    gc = config_or_keywords(GenerateConfig, config, settings, what="generate settings")
    runtime = Runtime.resolve(runtime, storage_options=storage_options, progress=progress)
    storage_options, progress = runtime.storage_options, runtime.progress
    n, min_mi, band, shard_size = gc.n, float(gc.min_mi), gc.band, gc.shard_size
    balanced, max_attempts, max_rounds, num_threads = gc.balanced, gc.max_attempts, gc.max_rounds, gc.num_threads
    seed = check_seed(seed)
    bundle = load_checkpoint(str(model_dir), storage_options)
    cfg = bundle.config
    n_target = parse_count(n, int(cfg["n_train_items"]))
    if store is not None:
        _check_store(cfg, store, storage_options)
    from mirage.augment.speakers import prepare_generation

    # speaker-aware generators draw each row's speaker code from extra noise columns
    bundle, spec, speaker_run = prepare_generation(bundle, CodeSpec.from_bundle(bundle), gc)
    loc = Location(str(out_dir), storage_options)
    check_out_dir(loc.url)
    from mirage.featstore.kinds import SHARD_SET, check_output

    check_output(loc.url, SHARD_SET, flag="--out", storage_options=storage_options)
    _check_disk_space(loc, bundle, n_target, flag_value=n)
    run = {"generator": bundle.fingerprint, "seed": int(seed), "n_requested": n_target, "shard_size": shard_size,
           "min_mi": min_mi, "mi_band": list(band), "balanced": bool(balanced), "max_attempts": max_attempts,
           "max_rounds": max_rounds, "mode": cfg["mode"], "labels": cfg["labels"],
           "source_content_hash": cfg["source"]["content_hash"], "source_store": cfg["source"].get("url"),
           "trained_speakers": cfg["speakers"], "version": RUN_VERSION}
    if n_target > WHOLE_PLAN_MAX:
        run["plan"] = "streamed"
    if speaker_run is not None:  # only then: other runs keep the manifest they had before speaker codes
        run["speaker_codes"] = speaker_run

    lock = WriterLock(loc, loc.url)
    lock.acquire()
    try:
        rows = _prepare_out(loc, run, overwrite)
        with fixed_threads(num_threads, blas=True):
            return _run(bundle, spec, loc, run, rows, n_target=n_target, seed=int(seed), min_mi=min_mi, band=band,
                        shard_size=shard_size, balanced=balanced, max_attempts=max_attempts, max_rounds=max_rounds,
                        progress=progress)
    finally:
        lock.release()


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} PB"


def _check_disk_space(loc: Location, bundle: GeneratorBundle, n_target: int, *, flag_value) -> None:
    """Refuse up front (ConfigError) when the shards would not fit in the free space at ``--out``."""
    if is_remote(loc.url):
        return
    done = 0
    try:
        existing = shards.raw_rows(loc) if os.path.isdir(loc.path) else None
        done = sum(int(r["n_items"]) for r in existing[0]) if existing else 0
    except Exception:  # an unreadable manifest is reported where the run reads it
        done = 0
    need = max(0, n_target - done) * shard_row_bytes(bundle)
    where = loc.path
    while not os.path.exists(where) and os.path.dirname(where) != where:
        where = os.path.dirname(where)
    free = shutil.disk_usage(where).free
    if need > free:
        raise ConfigError(f"--n {flag_value}: {n_target - done} synthetic items would take at least {_human(need)} "
                          f"({need} bytes) at {loc.url}, but only {_human(free)} ({free} bytes) are free there; "
                          "ask for fewer items or choose another --out")


def _check_store(cfg: dict, store, storage_options) -> None:
    from mirage.featstore.store import FeatureStore, open_store

    fs = store if isinstance(store, FeatureStore) else open_store(str(store), storage_options=storage_options)
    try:
        from mirage.featstore.kinds import require_features

        require_features(fs)
        check_store_matches(cfg, fs)
    finally:
        if fs is not store:
            fs.close()


def _prepare_out(loc: Location, run: dict, overwrite: bool) -> list[dict]:
    """Committed rows to keep; removes temp leftovers and shards the manifest does not list."""
    existing = shards.raw_rows(loc)
    rows: list[dict] = []
    if existing is not None:
        if overwrite:
            loc.rm(shards.MANIFEST_NAME)
        else:
            shards.check_run_matches(loc, existing[1], run)
            rows = existing[0]
    listed = {r["path"] for r in rows}
    for name in loc.listdir(""):
        stale_shard = name.startswith("shard-") and name.endswith(".zarr") and name not in listed
        if name.startswith(shards.TMP_PREFIX) or stale_shard:
            log.info("removing unfinished %s", join(loc.url, name))
            loc.rm(name, recursive=True)
    return rows


def _run(bundle: GeneratorBundle, spec: CodeSpec, loc: Location, run: dict, rows: list[dict], *, n_target: int,
         seed: int, min_mi: float, band: tuple[float, float], shard_size: int, balanced: bool, max_attempts: int,
         max_rounds: int, progress: bool) -> GenerateResult:
    from tqdm.auto import tqdm

    plan = LabelPlan(spec, n_target, shard_size, balanced=balanced, seed=seed, whole_max=WHOLE_PLAN_MAX)
    prior = spec.sampling_prior(balanced)
    done = {int(r["slot"]) for r in rows}
    n_rejected = sum(int(r["attempt"]) for r in rows)
    failed: dict[int, float] = {}   # slot -> best score seen
    short: list[int] = []
    bar = tqdm(total=n_target, desc="augment generate", unit="item", disable=not progress, leave=False)
    bar.update(sum(int(r["n_items"]) for r in rows))
    # Writer threads: shards are written while the next ones are generated (torch, blosc and
    # file I/O release the GIL). A shard enters the manifest (under a lock, rows kept sorted by
    # slot) only once fully written, so a kill leaves only finished shards listed, whatever the
    # order in which the writers finish. At most `_WRITERS` writes are in flight. The manifest
    # is rewritten at most every `_COMMIT_EVERY_S` (rewriting it per shard is quadratic in the
    # number of shards) and once at the end: a kill loses at most that much finished work,
    # whose shards the rerun replaces.
    writer = ThreadPoolExecutor(max_workers=_WRITERS, thread_name_prefix="augment-shard-writer")
    pending: list[Future] = []
    commit_lock = threading.Lock()
    listed = {"rows": len(rows), "at": time.monotonic()}  # what the manifest on disk lists, and since when

    def _list(force: bool) -> None:
        """Rewrite the manifest (caller holds commit_lock) when shards wait and it is due."""
        if len(rows) != listed["rows"] and (force or time.monotonic() - listed["at"] >= _COMMIT_EVERY_S):
            shards.write_manifest(loc, rows, run)
            listed.update(rows=len(rows), at=time.monotonic())

    def _commit(shard: Shard, slot: int, attempt: int) -> None:
        row = _write_shard(loc, bundle, shard, run, seed=seed, slot=slot, attempt=attempt)
        with commit_lock:
            rows.append(row)
            _list(force=False)

    def _drain(keep: int) -> None:
        while len(pending) > keep:
            pending.pop(0).result()  # re-raises a failed write here

    try:
        for slot, size, labels in plan.slots(skip=done):
            if slot in done:
                continue
            best = -1.0
            for attempt in range(max_attempts):
                shard = make_shard(bundle, spec, labels, prior, seed=seed, slot=slot, attempt=attempt, band=band,
                                    max_rounds=max_rounds)
                n_kept = len(shard.labels)
                best = max(best, shard.score.score if n_kept else -1.0)
                if n_kept and shard.score.score >= min_mi:
                    _drain(_WRITERS - 1)
                    pending.append(writer.submit(_commit, shard, slot, attempt))
                    if n_kept < size:
                        short.append(slot)
                    bar.update(n_kept)
                    break
                n_rejected += 1
                log.info("slot %d attempt %d: MI score %.3f < --min-mi %.3f, retrying", slot, attempt,
                         shard.score.score, min_mi)
            else:
                failed[slot] = best
        _drain(0)
    finally:
        writer.shutdown(wait=True)
        bar.close()
        failing = sys.exc_info()[0] is not None
        with commit_lock:
            try:
                _list(force=True)  # every shard written so far, also when the run is failing
            except Exception:
                if not failing:
                    raise
                log.warning("could not list the finished shards in %s; a rerun rewrites them", loc.url)
    if not rows:
        shards.write_manifest(loc, rows, run)  # an empty manifest still records what was tried
    return _result(loc, rows, n_target, n_rejected, failed, short, min_mi, band, max_attempts, max_rounds)


def _result(loc, rows, n_target, n_rejected, failed, short, min_mi, band, max_attempts, max_rounds) -> GenerateResult:
    rows = sorted(rows, key=lambda r: r["slot"])
    n_items = sum(int(r["n_items"]) for r in rows)
    complete = n_items == n_target
    msg = f"wrote {n_items} synthetic items in {len(rows)} shards to {loc.url}"
    if n_rejected:
        msg += f"; {n_rejected} shard attempts scored below --min-mi {min_mi:g} and were discarded"
    if not complete:
        why = []
        if failed:
            why.append(f"{len(failed)} shards scored below --min-mi {min_mi:g} in all {max_attempts} attempts "
                       f"(best score {max(failed.values()):.3f}); lower --min-mi or refit with a larger --lambda-mi")
        if short:
            why.append(f"{len(short)} shards could not fill their label quotas with samples inside --mi-band "
                       f"{band[0]:g},{band[1]:g} in {max_rounds} rounds; widen the band")
        msg = f"produced {n_items} of {n_target} requested items: " + "; ".join(why) + f" ({msg})"
    shard_info = [{"path": r["path"], "n_items": int(r["n_items"]), "mi_score": float(r["mi_score"])} for r in rows]
    return GenerateResult(manifest_path=join(loc.url, shards.MANIFEST_NAME), n_items=n_items, n_shards=len(rows),
                          n_rejected=n_rejected, message=msg, n_requested=n_target, complete=complete, shards=shard_info)


