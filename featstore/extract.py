"""The extraction engine: corpus -> item table -> embeddings -> feature store.

Work is cut into chunk-aligned units of rows (see :mod:`featstore.store.writer`). Each unit
is decoded, sorted by length into batches, embedded under ``torch.inference_mode`` and
handed to the single writer in this process. Units run here (decoding of the next unit
overlaps embedding of the current one) or as tasks on a Dask cluster; both paths call the
same :func:`embed_unit`, so they give the same values.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

import numpy as np
import pandas as pd

from mirage.featstore import audio as audio_io
from mirage.featstore.errors import BadAudioError
from mirage.featstore.extract_config import ExtractConfig
from mirage.featstore.runtime import Runtime
from mirage.featstore.store.base import STATUS_OK, STATUS_SKIPPED, FeatureStore
from mirage.featstore.store.writer import StoreWriter

log = logging.getLogger(__name__)

#: every hidden state of the audio encoder, pooled: (N, L+1, D), with ``--audio-layer all``
LAYERS_ARRAY = "audio_layers"


@dataclasses.dataclass
class ExtractResult:
    store: FeatureStore
    n_units_done_now: int
    n_units_total: int
    audio_s: float
    wall_s: float
    already_complete: bool


@dataclasses.dataclass
class DecodedUnit:
    start: int
    stop: int
    waves: dict[int, np.ndarray]          # local row index -> wave at the audio extractor's rate
    skipped: list[dict]                   # utt_id, path, reason, message
    texts: list[str]


def decode_unit(rows: pd.DataFrame, start: int, stop: int, sample_rate: int, *, strict: bool = False) -> DecodedUnit:
    """Read and check every utterance of a unit; bad ones become skip reports (or raise if strict)."""
    waves: dict[int, np.ndarray] = {}
    skipped: list[dict] = []
    views = rows[["aug_type", "aug_params"]].to_numpy().tolist() if "aug_type" in rows.columns else None
    talkers: dict[str, np.ndarray] = {}  # babble talkers decoded once per unit

    def talker(p: str) -> np.ndarray:
        if p not in talkers:
            talkers[p] = audio_io.load(p, sample_rate)
        return talkers[p]

    for i, (utt_id, path) in enumerate(zip(rows["utt_id"], rows["path"])):
        try:
            waves[i] = audio_io.load(path, sample_rate)
            if views is not None and views[i][0] != "clean":  # augmented view (featstore.views), applied after decoding
                from mirage.featstore.view_ops import apply_view

                waves[i] = apply_view(waves[i], sample_rate, views[i][0], views[i][1], load=talker)
        except BadAudioError as exc:
            if strict:
                raise BadAudioError(exc.reason, f"{exc} (utt_id {utt_id}; --strict stops at the first bad item, drop it to skip bad items)") from None
            skipped.append({"utt_id": utt_id, "path": path, "reason": exc.reason, "message": str(exc)})
    return DecodedUnit(start, stop, waves, skipped, rows["text"].fillna("").astype(str).tolist())


def length_batches(lengths: dict[int, int], batch_size: int) -> list[list[int]]:
    """Group row indices into batches of similar length (longest first), to waste little padding."""
    order = sorted(lengths, key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def embed_decoded(unit: DecodedUnit, audio_ex, text_ex, *, batch_size: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    import torch

    from mirage.featstore.extractors import get_loaded

    n = unit.stop - unit.start
    values = {"audio": np.zeros((n, audio_ex.dim), dtype=np.float32)}
    layers = audio_ex.layer_states_shape
    if layers is not None:
        values[LAYERS_ARRAY] = np.zeros((n, *layers), dtype=np.float32)
    status = np.full(n, STATUS_SKIPPED, dtype=np.uint8)
    ok = sorted(unit.waves)
    status[ok] = STATUS_OK
    with torch.inference_mode():
        a = get_loaded(audio_ex)
        for batch in length_batches({i: len(unit.waves[i]) for i in ok}, batch_size):
            out = a.embed([unit.waves[i] for i in batch])
            if layers is not None:
                values[LAYERS_ARRAY][batch] = out
                out = out[:, a.stored_layer]
            values["audio"][batch] = out
        if text_ex is not None:
            t = get_loaded(text_ex)
            values["text"] = np.zeros((n, text_ex.dim), dtype=np.float32)
            for j in range(0, len(ok), batch_size):
                batch = ok[j : j + batch_size]
                values["text"][batch] = t.embed([unit.texts[i] for i in batch])
    return values, status


def embed_unit(rows: pd.DataFrame, start: int, stop: int, audio_ex, text_ex, *, batch_size: int, strict: bool,
               torch_threads: int | None = None, host_procs: dict[str, int] | None = None):
    """Decode + embed one unit; the Dask task body. Returns (start, stop, values, status, skipped).

    On a Dask worker without ``torch_threads``, torch gets the worker's share of its host's
    CPUs (``host_procs``: worker processes per host). Models are loaded once per process
    (:func:`featstore.extractors.get_loaded`), not once per task."""
    if torch_threads is None and host_procs is not None:
        from mirage.featstore.dask_utils import worker_torch_threads

        torch_threads = worker_torch_threads(host_procs)
    from mirage.featstore.threads import fixed_threads

    with fixed_threads(torch_threads):  # restored after the task: a threaded scheduler shares the process
        unit = decode_unit(rows, start, stop, audio_ex.sample_rate, strict=strict)
        values, status = embed_decoded(unit, audio_ex, text_ex, batch_size=batch_size)
    return start, stop, values, status, unit.skipped


def _local_units(writer: StoreWriter, units, audio_ex, text_ex, *, batch_size: int, strict: bool) -> Iterator:
    """Embed units in this process; decoding of unit k+1 runs in a thread during unit k."""
    plan = writer.plan
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as pool:
        futures = [pool.submit(decode_unit, plan.iloc[s:e], s, e, audio_ex.sample_rate, strict=strict) for s, e in units[:2]]
        for k in range(len(units)):
            unit = futures[k].result()
            if k + 2 < len(units):
                s, e = units[k + 2]
                futures.append(pool.submit(decode_unit, plan.iloc[s:e], s, e, audio_ex.sample_rate, strict=strict))
            values, status = embed_decoded(unit, audio_ex, text_ex, batch_size=batch_size)
            futures[k] = None  # release the decoded audio
            yield unit.start, unit.stop, values, status, unit.skipped


def _dask_units(writer: StoreWriter, units, audio_ex, text_ex, *, batch_size: int, strict: bool, client) -> Iterator:
    """One task per unit; results come back to this process's single writer as they finish.

    A worker that dies takes its tasks with it and the scheduler reruns them elsewhere, so
    no unit is lost or written twice. If the cluster cannot finish (a unit keeps killing
    workers, or no worker is left for ``MIRAGE_DASK_WAIT_S`` seconds), a ClusterError says
    so and a rerun resumes from the units already written."""
    from distributed import wait

    from mirage.featstore.dask_utils import cluster_failure, host_processes, watch_workers

    procs = host_processes(client)
    plan = writer.plan
    run = uuid.uuid4().hex[:8]  # a rerun must not meet the keys of a run the scheduler is still forgetting
    futures = [client.submit(embed_unit, plan.iloc[s:e], s, e, audio_ex, text_ex, batch_size=batch_size, strict=strict,
                             host_procs=procs, key=f"embed-{writer.fingerprint[:8]}-{run}-{s}", retries=2, pure=False)
               for s, e in units]
    pending, watchdog = set(futures), watch_workers(client)
    try:
        while pending:
            try:
                done, pending = wait(pending, timeout=2.0, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            except Exception as exc:
                raise (cluster_failure(exc, "the extraction") or exc) from exc
            if not done:
                watchdog()
            for fut in sorted(done, key=lambda f: str(f.key)):
                try:
                    result = fut.result()
                except Exception as exc:
                    err = cluster_failure(exc, f"unit {fut.key}")
                    if err is None:
                        raise
                    raise err from exc
                fut.release()
                yield result
    finally:
        for fut in futures:
            fut.cancel()


def extract(corpus: str | pd.DataFrame, *, store: str, config: ExtractConfig | None = None,
            runtime: Runtime | None = None, cache_dir: str | None = None, workers: int = 0,
            scheduler: str | None = None, storage_options: dict[str, Any] | None = None,
            progress: bool | None = None, **settings: Any) -> ExtractResult:
    """Extract audio (and text) embeddings for every item of a corpus into ``store``.

    ``corpus`` is a registered corpus name or a ready item table. ``config`` holds the
    settings (:class:`featstore.extract_config.ExtractConfig`; or give its fields as keywords);
    ``runtime`` how the work runs (:class:`featstore.runtime.Runtime`; or give ``workers``,
    ``scheduler``, ``storage_options``, ``progress``). Rerunning the same call after a crash
    resumes; a finished store with the same settings is returned untouched. ``views`` (e.g.
    ``clean,noise:snr=10``; see :mod:`featstore.views`) stores one row per item and view, the
    views' random parameters drawn from ``seed``. ``unlabelled_root`` adds every audio file under
    that folder as an unlabelled item (:mod:`featstore.corpora.unlabelled`), after ``limit`` is
    applied to the corpus's own items.
    """
    from mirage.featstore.corpora import get_corpus
    from mirage.featstore.device import check_device
    from mirage.featstore.extractors import DEFAULT_AUDIO, get_audio_extractor, get_text_extractor
    from mirage.featstore.memory import hold_mmap_threshold

    from mirage.featstore.settings import config_or_keywords

    cfg = config_or_keywords(ExtractConfig, config, settings)
    runtime = Runtime.resolve(runtime, workers=workers, scheduler=scheduler, storage_options=storage_options,
                              progress=progress)
    audio_model = cfg.audio_model or DEFAULT_AUDIO
    check_device(cfg.device)  # before any folder is made: a bad --device fails here, not in the first model call
    hold_mmap_threshold()  # peak memory follows the batch of windows, not the clip length
    if isinstance(corpus, pd.DataFrame):
        items, corpus_name = corpus, "custom"
    else:
        items, corpus_name = get_corpus(corpus).load_items(cfg.root, cache_dir=cache_dir), corpus
    if cfg.limit is not None:
        items = items.iloc[:cfg.limit]
    if cfg.unlabelled_root:
        from mirage.featstore.corpora.unlabelled import add_unlabelled

        items = add_unlabelled(items, cfg.unlabelled_root)
    if cfg.views:
        from mirage.featstore.views import expand_plan, parse_views

        view_specs = parse_views(cfg.views)
        items = expand_plan(items, view_specs, seed=cfg.seed)
    audio_ex = get_audio_extractor(audio_model, layer=cfg.audio_layer, pooling=cfg.pooling, device=cfg.device,
                                   window_s=cfg.window_s)
    text_ex = (get_text_extractor(cfg.text_model, layer=cfg.text_layer, device=cfg.device)
               if cfg.text_model and cfg.text_model != "none" else None)
    arrays = {"audio": audio_ex.dim, **({"text": text_ex.dim} if text_ex is not None else {})}
    if audio_ex.layer_states_shape is not None:
        arrays[LAYERS_ARRAY] = tuple(audio_ex.layer_states_shape)
    metadata = {"kind": "features", "corpus": corpus_name,
                "extractors": {"audio": audio_ex.config(), "text": text_ex.config() if text_ex is not None else None}}
    if cfg.views:
        metadata["views"] = {"specs": [v.spec for v in view_specs], "seed": int(cfg.seed)}
    t0 = time.perf_counter()
    with StoreWriter(store, plan=items, arrays=arrays, metadata=metadata, format=cfg.format, chunk_rows=cfg.chunk_rows,
                     storage_options=runtime.storage_options, overwrite=cfg.overwrite) as writer:
        pending = writer.pending_units()
        n_total = len(writer.units())
        if writer.already_complete:
            log.info("%s is already complete; nothing to do", store)
            return ExtractResult(writer.finalize(), 0, n_total, 0.0, time.perf_counter() - t0, True)
        log.info("%d of %d units to extract (%d rows each)", len(pending), n_total, writer.chunk_rows)
        audio_s = _run_units(writer, pending, audio_ex, text_ex, batch_size=cfg.batch_size, strict=cfg.strict,
                             runtime=runtime)
        result = writer.finalize()
    return ExtractResult(result, len(pending), n_total, audio_s, time.perf_counter() - t0, False)


def _run_units(writer, pending, audio_ex, text_ex, *, batch_size: int, strict: bool, runtime: Runtime) -> float:
    n_rows = sum(e - s for s, e in pending)
    audio_s = 0.0
    with runtime.bar(total=n_rows, unit="utt", desc="extract") as bar:
        with runtime.dask() as client, runtime.threads():  # threads: this process's share (Dask workers size their own)
            stream = (_dask_units(writer, pending, audio_ex, text_ex, batch_size=batch_size, strict=strict, client=client)
                      if client is not None else
                      _local_units(writer, pending, audio_ex, text_ex, batch_size=batch_size, strict=strict))
            for start, stop, values, status, skipped in stream:
                writer.write_unit(start, stop, values, status, skipped)
                durations = writer.plan["duration_s"].iloc[start:stop].to_numpy()
                audio_s += float(np.nansum(durations[status == STATUS_OK]))
                bar.update(stop - start)
                bar.set_postfix(skipped=int(np.sum(status == STATUS_SKIPPED)), refresh=False)
    return audio_s
