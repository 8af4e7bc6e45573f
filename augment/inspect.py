"""``augment inspect``: summarise a synthetic shard set and draw real vs generated features.

Beside each shard's ``mi_score`` (the paper's quality measure) the summary gives ``c2st_acc``,
a classifier two-sample test (Lopez-Paz & Oquab, 2017): the cross-validated accuracy of a
logistic regression telling the shard's audio rows from real ones. 0.5 means the two sets
are indistinguishable to a linear probe; 1.0 means every generated row is recognisable.
Real rows come from ``store`` or else the manifest's source store, restricted to the
speakers the generator was trained on (the distribution it modelled); each side is
sub-sampled to the same count, at most ``c2st_rows`` (seeded), the features standardised
inside each fold, 5 stratified folds (seeded). When the real store cannot be opened (or
its width differs) ``c2st_acc`` is null and ``c2st_reason`` says why.

With ``fidelity`` (the default) each shard also gets, against the same real rows, the
fidelity/diversity scores of :mod:`augment.fidelity` — ``precision``, ``recall``, ``density``,
``coverage`` (k = 5 nearest neighbours) and ``frechet`` (per-class Fréchet distance, mean over
classes; ``frechet_by_class``) — and the summary their size-weighted means (``<name>_mean``).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np

from mirage.featstore.standardize import floored_scale
from mirage.featstore.errors import ConfigError

from mirage.augment.seeding import numpy_rng
from mirage.augment.shards import manifest_location, read_manifest, read_run

log = logging.getLogger(__name__)

METHODS = ("tsne", "pca")
C2ST_ROWS = 2000
C2ST_FOLDS = 5


def inspect_shards(path, *, min_mi: float | None = None, plot: str | None = None, store=None, method: str = "tsne",
                   max_points: int = 2000, seed: int = 0, storage_options: dict | None = None, c2st: bool = True,
                   c2st_rows: int = C2ST_ROWS, fidelity: bool = True, progress: bool = False) -> dict[str, Any]:
    """Summary of the shards listed in ``path``'s manifest (optionally only ``mi_score >= min_mi``).

    With ``c2st`` (the default) each shard also gets ``c2st_acc`` (see the module docstring)
    and the summary ``c2st_acc_mean`` (weighted by shard size).

    With ``plot`` a PNG of a 2-D embedding (t-SNE or PCA) of real vs generated audio
    features coloured by emotion is written; real features come from ``store`` or else
    the store the generator was fitted on, when it is still there.
    """
    if method not in METHODS:
        raise ConfigError(f"--method: expected one of {', '.join(METHODS)}, got {method!r}")
    df = read_manifest(path, min_mi=min_mi, storage_options=storage_options)
    run = read_run(path, storage_options)
    loc, _ = manifest_location(path, storage_options)
    counts: Counter = Counter()
    for c in df["label_counts"]:
        counts.update(c)
    n_items = int(df["n_items"].sum()) if len(df) else 0
    weights = df["n_items"].to_numpy(dtype=np.float64)
    out: dict[str, Any] = {
        "path": loc.url,
        "n_items": n_items,
        "n_shards": int(len(df)),
        "n_requested": run.get("n_requested"),
        "complete": run.get("n_requested") == n_items if run.get("n_requested") is not None else None,
        "mi_score_mean": float(np.average(df["mi_score"], weights=weights)) if n_items else None,
        "mi_score_min": float(df["mi_score"].min()) if len(df) else None,
        "label_counts": dict(sorted((str(k), int(v)) for k, v in counts.items())),
        "shards": [{"path": r["path"], "n_items": int(r["n_items"]), "mi_score": float(r["mi_score"]),
                    "mi_y_nats": float(r["mi_y_nats"]),
                    "mi_t_nats": None if not np.isfinite(r["mi_t_nats"]) else float(r["mi_t_nats"]),
                    "attempt": int(r["attempt"])} for r in df.to_dict(orient="records")],
        "generator": run.get("generator"),
        "seed": run.get("seed"),
        "mode": run.get("mode"),
        "min_mi": run.get("min_mi"),
        "source_content_hash": run.get("source_content_hash"),
        "trained_speakers": run.get("trained_speakers"),
    }
    from tqdm.auto import tqdm

    # stage by stage on a terminal (t-SNE of ~20k points runs for tens of seconds)
    stages = [s for s, on in (("two-sample scores", c2st or fidelity), (f"{method} plot", bool(plot))) if on]
    bar = tqdm(total=len(stages), desc="augment inspect", unit="stage", disable=None if progress else True, leave=False)
    if c2st or fidelity:
        bar.set_postfix_str(stages[0])
        _add_c2st(out, df, store=store if store is not None else run.get("source_store"), speakers=out["trained_speakers"],
                  expected_hash=run.get("source_content_hash"), max_rows=int(c2st_rows), seed=seed,
                  storage_options=storage_options, c2st=c2st, fidelity=fidelity)
        bar.update()
    if plot:
        bar.set_postfix_str(stages[-1])
        log.info("augment inspect: embedding up to %d real + %d generated points with %s", max_points, max_points, method)
        out["plot"] = plot_embedding(df, plot, store=store if store is not None else run.get("source_store"),
                                     speakers=out["trained_speakers"], method=method, max_points=max_points, seed=seed,
                                     expected_hash=run.get("source_content_hash"), storage_options=storage_options)
        bar.update()
    bar.close()
    return out


def c2st_accuracy(real: np.ndarray, generated: np.ndarray, *, seed: int = 0, max_rows: int = C2ST_ROWS,
                  folds: int = C2ST_FOLDS) -> tuple[float | None, str | None]:
    """Cross-validated accuracy of a logistic regression telling ``generated`` rows from ``real`` ones.

    Both sides are sub-sampled (seeded) to the same count n = min(len(real), len(generated),
    max_rows), so chance is exactly 0.5; features are standardised within each training fold.
    Returns ``(accuracy, None)`` or ``(None, reason)`` when there are too few rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    real = np.asarray(real, dtype=np.float64)
    generated = np.asarray(generated, dtype=np.float64)
    real = real[np.isfinite(real).all(axis=1)]
    generated = generated[np.isfinite(generated).all(axis=1)]
    if real.shape[1:] != generated.shape[1:]:
        return None, f"feature widths differ (real {real.shape[1:]}, generated {generated.shape[1:]})"
    n = int(min(len(real), len(generated), max_rows))
    if n < folds:
        return None, f"too few rows for {folds}-fold cross-validation (real {len(real)}, generated {len(generated)})"
    rng = numpy_rng(seed, "inspect", "c2st")
    r = real[np.sort(rng.choice(len(real), n, replace=False))]
    g = generated[np.sort(rng.choice(len(generated), n, replace=False))]
    x = np.concatenate([r, g])
    y = np.concatenate([np.zeros(n, np.int64), np.ones(n, np.int64)])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(model, x, y, cv=cv))), None


def _add_c2st(out: dict[str, Any], df, *, store, speakers, expected_hash, max_rows: int, seed: int,
              storage_options, c2st: bool = True, fidelity: bool = False) -> None:
    from mirage.featstore.store import open_store

    real, reason = None, None
    if store is None:
        reason = "no real store: the manifest names no source store (pass --store)"
    else:
        try:
            real = _read_real(store, speakers, expected_hash, max_rows, seed, storage_options, strict=True)
        except Exception as e:  # noqa: BLE001 - any failure to read the real rows is reported, not raised
            reason = f"real store {store} could not be read: {type(e).__name__}: {e}"
    accs, weights = [], []
    scores: dict[str, list[tuple[float, int]]] = {name: [] for name in FIDELITY_KEYS}
    for entry, p in zip(out["shards"], df["path_abs"]):
        acc, why, x = None, reason, None
        if real is not None:
            with open_store(p, storage_options=storage_options) as s:
                x = s.read("audio")
                lab = s.items.sort_values("row", kind="stable")["label"].astype(str).to_numpy()
            if len(x) > max_rows:
                pick = np.sort(numpy_rng(seed, "inspect", "c2st", entry["path"]).choice(len(x), max_rows, replace=False))
                x, lab = x[pick], lab[pick]
        if c2st:
            if x is not None:
                acc, why = c2st_accuracy(real[0], x, seed=seed, max_rows=max_rows)
            entry["c2st_acc"] = acc
            if acc is None:
                entry["c2st_reason"] = why
            else:
                accs.append(acc)
                weights.append(entry["n_items"])
        if fidelity:
            _add_fidelity(entry, real, x, lab if x is not None else None, reason, seed, max_rows, scores)
    if c2st:
        out["c2st_acc_mean"] = float(np.average(accs, weights=weights)) if accs else None
    for name, vals in (scores.items() if fidelity else ()):
        out[f"{name}_mean"] = float(np.average([v for v, _ in vals], weights=[w for _, w in vals])) if vals else None
    if reason is not None:
        out["c2st_reason" if c2st else "fidelity_reason"] = reason


FIDELITY_KEYS = ("precision", "recall", "density", "coverage", "frechet")


def _add_fidelity(entry: dict[str, Any], real, x, labels, reason, seed: int, max_rows: int,
                  scores: dict[str, list[tuple[float, int]]]) -> None:
    from mirage.augment.fidelity import fidelity_scores

    if x is None:
        res, why = {}, reason
    else:
        res, why = fidelity_scores(real[0], real[1], x, labels, rng=numpy_rng(seed, "inspect", "fidelity", entry["path"]),
                                   max_rows=max_rows)
    for name in FIDELITY_KEYS:
        entry[name] = res.get(name)
        if res.get(name) is not None:
            scores[name].append((res[name], entry["n_items"]))
    entry["frechet_by_class"] = res.get("frechet_by_class", {})
    if why is not None:
        entry["fidelity_reason"] = why


def _read_synthetic(df, max_points: int, seed: int, storage_options) -> tuple[np.ndarray, np.ndarray]:
    from mirage.featstore.store import open_store

    xs, ys = [], []
    for p in df["path_abs"]:
        with open_store(p, storage_options=storage_options) as s:
            xs.append(s.read("audio"))
            ys.append(s.items["label"].astype(str).to_numpy())
    if not xs:
        return np.zeros((0, 0), np.float32), np.zeros(0, dtype=object)
    x, y = np.concatenate(xs), np.concatenate(ys)
    if len(x) > max_points:
        keep = np.sort(numpy_rng(seed, "inspect", "synthetic").choice(len(x), max_points, replace=False))
        x, y = x[keep], y[keep]
    return x, y


def _read_real(store, speakers, expected_hash, max_points: int, seed: int, storage_options, strict: bool = False):
    from mirage.featstore.errors import MirageError
    from mirage.featstore.store import FeatureStore, open_store

    if store is None:
        return None
    try:
        fs = store if isinstance(store, FeatureStore) else open_store(str(store), storage_options=storage_options)
    except (MirageError, OSError) as e:
        if strict:
            raise
        log.warning("real features not plotted: %s", e)
        return None
    try:
        if expected_hash and fs.metadata.get("content_hash") not in (None, expected_hash):
            log.warning("%s is not the store the generator was fitted on (content_hash differs); plotting it anyway", fs.url)
        items = fs.items
        if speakers:
            chosen = items[items["speaker"].astype(str).isin(set(speakers))]
            if len(chosen):  # another store (--store) may name its speakers otherwise: use all of it then
                items = chosen
        if len(items) > max_points:
            items = items.iloc[np.sort(numpy_rng(seed, "inspect", "real").choice(len(items), max_points, replace=False))]
        return fs.read("audio", items["row"].to_numpy()), items["label"].astype(str).to_numpy()
    finally:
        if fs is not store:
            fs.close()


def embed_2d(x: np.ndarray, method: str, seed: int) -> np.ndarray:
    """Standardised -> PCA (<= 50 dims) -> t-SNE, or the first two principal components."""
    from sklearn.decomposition import PCA

    n_comp = int(min(50, x.shape[1], max(2, len(x) - 1)))
    z = PCA(n_components=n_comp, random_state=seed).fit_transform(x)
    if method == "pca" or len(x) < 10:
        return z[:, :2]
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3.0)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(z)


def plot_embedding(df, out_png: str, *, store, speakers, method: str, max_points: int, seed: int,
                   expected_hash: str | None, storage_options) -> str:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    xs, ys = _read_synthetic(df, max_points, seed, storage_options)
    real = _read_real(store, speakers, expected_hash, max_points, seed, storage_options)
    if not len(xs) and real is None:
        raise ConfigError("--plot: nothing to draw; the manifest lists no shards and no real store was found (pass --store)")
    parts = [(xs, ys, "generated")] if len(xs) else []
    if real is not None:
        parts.insert(0, (real[0], real[1], "real"))
    x = np.concatenate([p[0] for p in parts]).astype(np.float64)
    ref = parts[0][0]  # standardise with the real data's statistics when there is real data
    x = (x - ref.mean(0)) / floored_scale(ref.mean(0), ref.std(0))
    emb = embed_2d(x, method, seed)
    labels = sorted({str(v) for p in parts for v in p[1]})
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(7, 6))
    start = 0
    for feats, labs, kind in parts:
        e = emb[start:start + len(feats)]
        start += len(feats)
        for i, lab in enumerate(labels):
            m = labs == lab
            if m.any():
                ax.scatter(e[m, 0], e[m, 1], s=10 if kind == "generated" else 22, marker="x" if kind == "generated" else "o",
                           color=cmap(i % cmap.N), alpha=0.45 if kind == "generated" else 0.9,
                           edgecolors="black" if kind == "real" else None, linewidths=0.3 if kind == "real" else None,
                           label=f"{lab} ({kind})")
    ax.set_title(f"{'t-SNE' if method == 'tsne' else 'PCA'} of real (o) vs generated (x) audio features", fontsize=10)
    ax.legend(fontsize=7, markerscale=1.2, ncol=2, loc="best")
    ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    from mirage.featstore.store.location import Location

    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    folder, _, name = str(out_png).rpartition("/")
    Location(folder or ".", storage_options).write_bytes(name, buf.getvalue())
    return str(out_png)
