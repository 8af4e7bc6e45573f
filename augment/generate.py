"""``augment generate``: sample codes -> G -> score with the stage-1 heads -> MI-filtered
shards in the feature-store format + ``manifest.parquet``.

Shard ``k`` (a *slot*) has a fixed label plan; attempt ``a`` of it draws noise and text
codes from seeds derived from (seed, k, a), so a slot's content never depends on other
slots, on where the run stopped, or on the output dir. A shard is written under a temporary
name, renamed, and only then listed in the manifest (rewritten atomically after each
shard): a killed run loses at most the shard in flight, and the same command resumes.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from mirage.featstore.errors import ConfigError
from mirage.featstore.store.location import Location, WriterLock, check_out_dir, is_remote, join

from mirage.augment import shards
from mirage.augment.checkpoint import GeneratorBundle, check_store_matches, load_checkpoint
from mirage.augment.counts import check_count_spec, parse_band, parse_count, parse_unit_float
from mirage.augment.mi import MIScore, score_samples
from mirage.augment.sampling import CodeSpec
from mirage.augment.seeding import check_seed, fixed_threads, numpy_rng, torch_generator
from mirage.augment.vouch import self_record

log = logging.getLogger(__name__)

RUN_VERSION = 1
#: Up to this many items the label plan is drawn whole, as earlier versions did (so their
#: runs resume byte-identically); above it, shard by shard in bounded memory.
WHOLE_PLAN_MAX = 1 << 24
_FORWARD_BATCH = 8192
_WRITERS = 2  # shard writes in flight; writing, not generating, is the bottleneck


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


@dataclass
class _Shard:
    labels: np.ndarray
    arrays: dict[str, np.ndarray]
    code_rows: np.ndarray
    score: MIScore


def _positive_int(value, flag: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{flag}: expected a positive integer, got {value!r}")
    return int(value)


def generate(model_dir, out_dir, *, n="4x", min_mi: float = 0.0, shard_size: int = 4096, balanced: bool = False,
             seed: int = 0, storage_options: dict | None = None, progress: bool = True, mi_band=None,
             max_attempts: int = 5, max_rounds: int = 8, store=None, overwrite: bool = False,
             num_threads: int | None = 1) -> GenerateResult:
    """Write about ``n`` synthetic items (``"4x"`` = 4 x the real training items, or a count).

    Shards whose normalised MI score is below ``min_mi`` are not written; their slot is
    retried up to ``max_attempts`` times with fresh noise. ``mi_band=(lo, hi)`` keeps only
    samples whose per-sample score lies in the band (redrawing up to ``max_rounds`` times to
    fill each label's quota). ``store`` (optional) is checked to have the model's dims.
    ``num_threads`` is fixed during generation so the bytes do not depend on the machine's
    default thread count.
    """
    check_count_spec(n)
    min_mi = parse_unit_float(min_mi, flag="--min-mi")
    band = parse_band(mi_band)
    shard_size = _positive_int(shard_size, "--shard-size")
    max_attempts = _positive_int(max_attempts, "--max-attempts")
    max_rounds = _positive_int(max_rounds, "--max-rounds")
    seed = check_seed(seed)
    bundle = load_checkpoint(str(model_dir), storage_options)
    cfg = bundle.config
    n_target = parse_count(n, int(cfg["n_train_items"]))
    if store is not None:
        _check_store(cfg, store, storage_options)
    spec = CodeSpec.from_bundle(bundle)
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

    lock = WriterLock(loc, loc.url)
    lock.acquire()
    try:
        rows = _prepare_out(loc, run, overwrite)
        with fixed_threads(num_threads):
            return _run(bundle, spec, loc, run, rows, n_target=n_target, seed=int(seed), min_mi=min_mi, band=band,
                        shard_size=shard_size, balanced=balanced, max_attempts=max_attempts, max_rounds=max_rounds,
                        progress=progress)
    finally:
        lock.release()


def shard_row_bytes(bundle: GeneratorBundle) -> int:
    """Bytes one synthetic item takes in its shard's arrays (a lower bound of the disk it needs)."""
    dims = bundle.config["dims"]
    floats = int(dims["audio"]) + 2  # audio, mi_pointwise, mi_score
    if bundle.use_text:
        floats += int(dims["text"]) * (2 if bundle.config["mode"] == "multimodal" else 1)  # text (+ text_pred)
    return 4 * floats + 1  # + status


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

    plan = LabelPlan(spec, n_target, shard_size, balanced=balanced, seed=seed)
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
    # order in which the writers finish. At most `_WRITERS` writes are in flight.
    writer = ThreadPoolExecutor(max_workers=_WRITERS, thread_name_prefix="augment-shard-writer")
    pending: list[Future] = []
    commit_lock = threading.Lock()

    def _commit(shard: _Shard, slot: int, attempt: int) -> None:
        row = _write_shard(loc, bundle, shard, run, seed=seed, slot=slot, attempt=attempt)
        with commit_lock:
            rows.append(row)
            shards.write_manifest(loc, rows, run)

    def _drain(keep: int) -> None:
        while len(pending) > keep:
            pending.pop(0).result()  # re-raises a failed write here

    try:
        for slot, size, labels in plan.slots(skip=done):
            if slot in done:
                continue
            best = -1.0
            for attempt in range(max_attempts):
                shard = _make_shard(bundle, spec, labels, prior, seed=seed, slot=slot, attempt=attempt, band=band,
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
    if not rows:
        shards.write_manifest(loc, rows, run)  # an empty manifest still records what was tried
    return _result(loc, rows, n_target, n_rejected, failed, short, min_mi, band, max_attempts, max_rounds)


class LabelPlan:
    """The labels of every slot: ``n`` labels in exact prior proportions, in a seeded random order.

    Up to :data:`WHOLE_PLAN_MAX` items the whole plan is one permutation (as in earlier
    versions). Above it, slot by slot in bounded memory: each slot's label counts are drawn
    without replacement from what is left of the exact counts (a multivariate
    hypergeometric draw, so the total still has exact proportions), then shuffled with the
    slot's own seed. Either way a slot's labels depend only on (seed, n, shard_size, prior).
    """

    def __init__(self, spec: CodeSpec, n: int, shard_size: int, *, balanced: bool, seed: int):
        from mirage.augment.sampling import exact_counts

        self.n, self.shard_size, self.seed = int(n), int(shard_size), int(seed)
        self.n_slots = -(-self.n // self.shard_size)
        self.streamed = self.n > WHOLE_PLAN_MAX
        self._whole = None if self.streamed else spec.label_plan(self.n, balanced=balanced, seed=seed)
        self._counts = exact_counts(self.n, spec.sampling_prior(balanced))

    def size(self, slot: int) -> int:
        return min(self.shard_size, self.n - slot * self.shard_size)

    def slots(self, skip=frozenset()):
        """Yield ``(slot, size, labels)`` in slot order (``labels`` None for slots in ``skip``)."""
        if not self.streamed:
            for slot in range(self.n_slots):
                size = self.size(slot)
                start = slot * self.shard_size
                yield slot, size, None if slot in skip else self._whole[start:start + size]
            return
        left = self._counts.copy()
        rng = numpy_rng(self.seed, "labels", "streamed")
        for slot in range(self.n_slots):
            size = self.size(slot)
            if slot == self.n_slots - 1:
                counts = left.copy()
            else:
                counts = _draw_counts(rng, left, size)
            left -= counts
            if slot in skip:
                yield slot, size, None
                continue
            labels = np.repeat(np.arange(len(counts)), counts)
            yield slot, size, labels[numpy_rng(self.seed, "labels", slot).permutation(size)]


def _draw_counts(rng: np.random.Generator, left: np.ndarray, size: int) -> np.ndarray:
    """``size`` labels drawn without replacement from ``left`` (per-label counts).

    numpy's exact draw takes totals below 1e9; above, a multinomial draw clipped to what is
    left (the shortfall going to the labels with the most left) keeps the totals exact."""
    total = int(left.sum())
    if total < 10**9:
        return rng.multivariate_hypergeometric(left, size, method="marginals")
    counts = np.minimum(rng.multinomial(size, left / total), left)
    short = size - int(counts.sum())
    for k in np.argsort(-(left - counts), kind="stable"):
        if short <= 0:
            break
        add = min(short, int(left[k] - counts[k]))
        counts[k] += add
        short -= add
    return counts


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


@torch.no_grad()
def _forward(bundle: GeneratorBundle, spec: CodeSpec, labels: np.ndarray, rows: np.ndarray, z: torch.Tensor):
    """ĥ (standardised), Q_y logits and Q_t output for the given codes."""
    y = torch.from_numpy(labels)
    t = torch.from_numpy(bundle.transform("text").forward(spec.text_codes[rows])) if bundle.use_text else None
    hs, ls, qs = [], [], []
    for s in range(0, len(labels), _FORWARD_BATCH):
        sl = slice(s, s + _FORWARD_BATCH)
        h = bundle.generator(z[sl], y[sl], None if t is None else t[sl])
        _, logits, q_t = bundle.align.heads(h)
        hs.append(h), ls.append(logits), qs.append(q_t)
    cat = lambda xs: None if xs[0] is None else torch.cat(xs)  # noqa: E731
    return y, t, cat(hs), cat(ls), cat(qs)


def _score(bundle, spec, prior, y, t, logits, q_t, rows) -> MIScore:
    kw = {}
    if t is not None:
        kw = {"q_t": q_t, "t": t, "text_ids": torch.from_numpy(spec.text_ids[rows]), "tau": float(bundle.config["tau"])}
    return score_samples(logits, y, prior, **kw)


def occurrence_rank(a: np.ndarray) -> np.ndarray:
    """For each element, how many equal elements precede it (0 for the first of its value)."""
    order = np.argsort(a, kind="stable")
    s = a[order]
    rank = np.empty(len(a), dtype=np.int64)
    rank[order] = np.arange(len(a)) - np.searchsorted(s, s, side="left")
    return rank


def _make_shard(bundle: GeneratorBundle, spec: CodeSpec, labels: np.ndarray, prior: np.ndarray, *, seed: int,
                slot: int, attempt: int, band: tuple[float, float], max_rounds: int) -> _Shard:
    """One attempt at one slot: fill each label's quota with in-band samples, keep the plan's order.

    Without a band, round 0 draws exactly the plan and keeps everything (the common path).
    """
    K = len(spec.labels)
    quota = np.bincount(labels, minlength=K)
    have = np.zeros(K, dtype=np.int64)
    full_band = band == (0.0, 1.0)
    pools: list[tuple] = []   # per round, of the kept candidates: h, logits, q_t, code rows, labels,
    #                           pointwise nats, pointwise score, and the round's whole MIScore
    for rnd in range(max_rounds):
        deficit = quota - have
        if not deficit.any():
            break
        rng = numpy_rng(seed, "codes", slot, attempt, rnd)
        if full_band and rnd == 0:
            cand = labels.astype(np.int64)
        else:  # oversample the missing labels, in random order
            cand = np.repeat(np.arange(K), deficit * 2)
            cand = cand[rng.permutation(len(cand))]
        rows = spec.code_rows(cand, rng)
        z = torch.randn(len(cand), spec.noise_dim, generator=torch_generator(seed, "z", slot, attempt, rnd))
        y, t, h, logits, q_t = _forward(bundle, spec, cand, rows, z)
        scored = _score(bundle, spec, prior, y, t, logits, q_t, rows)
        ps = scored.pointwise_score
        ok = (ps >= band[0]) & (ps <= band[1])
        idx = np.flatnonzero(ok)
        idx = idx[occurrence_rank(cand[idx]) < deficit[cand[idx]]]  # first `deficit` in-band ones per label
        sel = torch.from_numpy(idx)
        pools.append((h[sel], logits[sel], None if q_t is None else q_t[sel], rows[idx], cand[idx],
                      scored.pointwise_nats[idx], ps[idx], scored))
        have += np.bincount(cand[idx], minlength=K)
    # Lay the kept samples out in the plan's (random) order; plan positions left unfilled are dropped.
    out_labels = labels[_plan_positions(labels, have)].astype(np.int64)
    if not len(out_labels):
        empty = MIScore(0.0, 0.0, float("nan"), float("nan"), 0.0, np.zeros(0, np.float32), np.zeros(0, np.float32))
        return _Shard(labels=out_labels, arrays={}, code_rows=np.zeros(0, dtype=np.int64), score=empty)
    pool_labels = np.concatenate([p[4] for p in pools])
    by_label = np.argsort(pool_labels, kind="stable")
    starts = np.searchsorted(pool_labels[by_label], np.arange(K), side="left")
    take = torch.from_numpy(by_label[starts[out_labels] + occurrence_rank(out_labels)])
    h = torch.cat([p[0] for p in pools])[take]
    logits = torch.cat([p[1] for p in pools])[take]
    q_t = torch.cat([p[2] for p in pools])[take] if bundle.use_text else None
    rows = np.concatenate([p[3] for p in pools])[take.numpy()]
    if len(pools) == 1 and len(take) == len(pools[0][4]) and bool((take == torch.arange(len(take))).all()):
        score = pools[0][7]  # one round kept whole and in order: its scores are the shard's
    else:
        # Shard bounds over the final order; the per-sample scores stay those each sample was
        # selected with (the text term depends on its scoring batch, so rescoring would move
        # samples across the band edges).
        y = torch.from_numpy(out_labels)
        t = torch.from_numpy(bundle.transform("text").forward(spec.text_codes[rows])) if bundle.use_text else None
        score = _score(bundle, spec, prior, y, t, logits, q_t, rows)
        score.pointwise_nats = np.concatenate([p[5] for p in pools])[take.numpy()]
        score.pointwise_score = np.concatenate([p[6] for p in pools])[take.numpy()]
    arrays = {"audio": bundle.transform("audio").inverse(h.numpy()),
              "mi_pointwise": score.pointwise_nats, "mi_score": score.pointwise_score}
    if bundle.use_text:
        arrays["text"] = spec.text_codes[rows].astype(np.float32)
        if bundle.config["mode"] == "multimodal":
            arrays["text_pred"] = bundle.transform("text").inverse(q_t.numpy())
    return _Shard(labels=out_labels, arrays=arrays, code_rows=rows, score=score)


def _plan_positions(plan: np.ndarray, n_kept: np.ndarray) -> np.ndarray:
    """Indices of the plan positions that get a sample: the first ``n_kept[k]`` of each label."""
    return np.flatnonzero(occurrence_rank(plan) < np.asarray(n_kept)[plan])


def shard_chunk_rows(n_rows: int, dim: int, *, target_bytes: int = 4 << 20) -> int:
    """Rows per chunk of a shard: ~4 MiB of the audio array, a power of two in [64, 4096].

    Shards are written whole, so (unlike extraction) small resumable units buy nothing;
    bigger chunks mean fewer writes and fewer blocks for the loaders.
    """
    by_bytes = 1 << int(np.log2(max(1, target_bytes // (4 * max(1, dim)))))
    rows = int(min(4096, max(64, by_bytes)))
    return max(1, min(rows, n_rows))


def _write_shard(loc: Location, bundle: GeneratorBundle, shard: _Shard, run: dict, *, seed: int, slot: int,
                 attempt: int) -> dict[str, Any]:
    """Write one shard (temp name + rename where the filesystem allows) and return its manifest row."""
    from mirage.featstore.store import write_store

    cfg = bundle.config
    names = cfg["labels"]
    n = len(shard.labels)
    codes = bundle.codes
    text = codes["text"].to_numpy()[shard.code_rows] if bundle.use_text else np.full(n, "", dtype=object)
    source = codes["utt_id"].to_numpy()[shard.code_rows] if bundle.use_text else np.full(n, "", dtype=object)
    items = pd.DataFrame({
        "utt_id": [f"syn-{seed}-{slot:05d}-{i:06d}" for i in range(n)],
        "path": [""] * n, "speaker": ["synthetic"] * n, "label": [names[k] for k in shard.labels],
        "split": ["synthetic"] * n, "duration_s": np.full(n, np.nan), "text": [str(x) for x in text],
        "text_utt_id": [str(x) for x in source],
    })
    s = shard.score
    label_counts = {names[k]: int(c) for k, c in enumerate(np.bincount(shard.labels, minlength=len(names))) if c}
    mi = {"mi_y_nats": s.mi_y_nats, "mi_y_ceiling_nats": s.mi_y_ceiling_nats, "mi_t_nats": s.mi_t_nats,
          "mi_t_ceiling_nats": s.mi_t_ceiling_nats, "mi_score": s.score}
    meta = {"kind": "synthetic", "corpus": cfg["source"].get("corpus"), "extractors": cfg["source"].get("extractors", {}),
            "generator": bundle.fingerprint, "seed": seed, "slot": slot, "attempt": attempt, "mode": cfg["mode"],
            "labels": names, "source_content_hash": cfg["source"]["content_hash"], "speakers": cfg["speakers"],
            "mi": {k: (None if not np.isfinite(v) else v) for k, v in mi.items()}, "mi_band": run["mi_band"],
            **self_record(cfg, bundle.fingerprint)}  # the shard vouches for itself (augment.vouch)
    name = shards.SHARD_PATTERN.format(slot=slot)
    chunk = shard_chunk_rows(n, shard.arrays["audio"].shape[1])
    final = join(loc.url, name)
    if is_remote(loc.url):  # no atomic folder rename on object stores: the manifest is the commit
        written = write_store(final, items=items, arrays=shard.arrays, metadata=meta, storage_options=loc.storage_options,
                              chunk_rows=chunk)
    else:
        tmp = join(loc.url, f"{shards.TMP_PREFIX}{name}")
        written = write_store(tmp, items=items, arrays=shard.arrays, metadata=meta, chunk_rows=chunk)
        written.close()
        if os.path.exists(final):
            loc.rm(name, recursive=True)
        os.replace(tmp, final)
    content_hash = written.metadata["content_hash"]
    written.close()
    return {"path": name, "n_items": n, "label_counts": label_counts, **mi, "generator": bundle.fingerprint,
            "seed": seed, "slot": slot, "attempt": attempt, "source_content_hash": cfg["source"]["content_hash"],
            "trained_speakers": cfg["speakers"], "mode": cfg["mode"], "format": "zarr", "arrays": sorted(shard.arrays),
            "shard_content_hash": content_hash}
