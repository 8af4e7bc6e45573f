"""``train``: fit/evaluate emotion classifiers and compare augmentation methods."""

from __future__ import annotations

import click

from mirage.cli.common import LayerChoice, given_settings, run, settings_options, storage_options_option, verbosity_option


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mirage-ser", prog_name="train", message="%(prog)s (mirage-ser) %(version)s")
def main() -> None:
    """Train light emotion classifiers on feature stores (+ synthetic shards) and compare augmentations."""


def _dask_options(fn):
    fn = click.option("--scheduler", default=None, metavar="ADDR", help="Address of an existing Dask scheduler.")(fn)
    fn = click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
                      help="Start a local Dask cluster with N worker processes (0: in-process).")(fn)
    return fn


def _common(fn):
    fn = click.option("--normalise", type=click.Choice(["none", "global", "speaker"]), default="global", show_default=True,
                      help="global: z-score with the training fold's statistics (inductive). speaker: first z-score each "
                           "speaker's audio with that speaker's own mean/std, then globally; the test speaker's "
                           "statistics come from its own unlabelled test features (transductive). none: raw features.")(fn)
    fn = click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random step.")(fn)
    fn = click.option("--classifier", type=click.Choice(["linear", "mlp"]), default="linear", show_default=True)(fn)
    fn = click.option("--out", required=True, help="Output folder (metrics.json, plots).")(fn)
    fn = click.option("--eval", "evaluation", type=click.Choice(["loso", "official"]), default="loso", show_default=True,
                      help="Leave-one-speaker-out (one session out for IEMOCAP) or the corpus's official split.")(fn)
    fn = click.option("--mode", type=click.Choice(["ser", "multimodal"]), default="ser", show_default=True,
                      help="ser: audio embedding h; multimodal: [h; t].")(fn)
    fn = click.option("--min-mi", type=click.FloatRange(0.0, 1.0), default=None,
                      help="Skip synthetic shards whose normalised MI score is below this.")(fn)
    fn = click.option("--store", required=True, help="Real feature store (path or fsspec URL).")(fn)
    return fn


def _synthetic_loss_options(fn):
    """The classifier's settings (train.classifier.ClassifierConfig), generated from its fields."""
    from mirage.train.classifier import ClassifierConfig

    return settings_options(ClassifierConfig)(fn)


def _classifier_settings(options: dict) -> dict:
    """The classifier settings the user gave (the dataclass keeps every default)."""
    from mirage.train.classifier import ClassifierConfig

    return given_settings(options, ClassifierConfig)[0]


@main.command()
@_common
@click.option("--synthetic", multiple=True, metavar="MANIFEST",
              help="Synthetic shard set: folder or its manifest.parquet (repeatable); each fold uses the shards whose generator never saw its test speakers.")
@click.option("--loader", type=click.Choice(["auto", "memory", "stream"]), default="auto", show_default=True,
              help="Hold the data in memory or stream it per fold (auto: stream above --max-memory-mb).")
@click.option("--max-memory-mb", type=float, default=2048.0, show_default=True)
@click.option("--loader-workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="DataLoader worker processes for streamed training (started with spawn).")
@click.option("--layer", type=LayerChoice("mean", "weighted"), default=None, metavar="K|mean|weighted",
              help="Train on hidden state K of the store's audio_layers (featstore extract --audio-layer all), their mean, "
                   "or a softmax-weighted sum learned on each training fold (default: the store's audio array).")
@click.option("--method", type=click.Choice(["linear-probe", "mtl-aug"]), default="linear-probe", show_default=True,
              help="linear-probe: the --classifier on the embedding. mtl-aug: a multitask network (emotion head + "
                   "augmentation-type head + clean-embedding decoder on a shared trunk) trained on every view, "
                   "unlabelled rows feeding only the auxiliary losses.")
@click.option("--mtl-option", "mtl_options", multiple=True, metavar="KEY=VALUE",
              help="mtl-aug setting, e.g. --mtl-option w_aug=0 (ablate the aug-type task), w_recon, w_emotion, hidden, "
                   "epochs, lr, batch_size, dropout, weight_decay (repeatable).")
@click.option("--mtl-ablations", is_flag=True,
              help="mtl-aug: also run without each auxiliary task and single-task (OUT/ablations.json, ablations.png).")
@click.option("--test-views", default=None, metavar="SPEC,...",
              help="Also test each fold's classifier on these views of its test items, e.g. noise:snr=20,10,5,0 "
                   "(views the store holds; reports uar_by_view and OUT/uar_by_view.png).")
@click.option("--attack", default=None, metavar="fgsm:eps=E|pgd:eps=E[:steps=N],...",
              help="Also test each fold's classifier on adversarially perturbed (L∞, white-box) standardised test "
                   "embeddings; reports uar_under_attack.")
@click.option("--train-views", default=None, metavar="SPEC,...|all",
              help="Train on these views only (default: every view the store holds; tests use clean rows).")
@click.option("--final", is_flag=True,
              help="Also train on every labelled item and save the classifier to OUT/model (for `train predict`).")
@click.option("--allow-incomplete", is_flag=True,
              help="Use a --synthetic set that holds fewer items than its `augment generate` run asked for "
                   "(complete: false); refused by default.")
@_synthetic_loss_options
@_dask_options
@storage_options_option
@verbosity_option
def fit(store, synthetic, mode, evaluation, out, classifier, seed, min_mi, loader, max_memory_mb, loader_workers,
        layer, method, mtl_options, mtl_ablations, test_views, attack, train_views, final, workers,
        scheduler, storage_options, normalise, allow_incomplete, **synthetic_loss):
    """Evaluate a classifier on real (+ synthetic) features; writes OUT/metrics.json and OUT/confusion.png."""
    from mirage.train.fit import fit_method

    result = run(fit_method, store, out, method=method, mtl_options=_key_values(mtl_options, "--mtl-option"),
                 mtl_ablations=mtl_ablations, synthetic=synthetic, mode=mode, evaluation=evaluation, classifier=classifier,
                 seed=seed, min_mi=min_mi, loader=loader, max_memory_mb=max_memory_mb, workers=workers,
                 scheduler=scheduler, loader_workers=loader_workers, storage_options=storage_options,
                 classifier_options=_classifier_settings(synthetic_loss), progress=True, layer=layer,
                 normalise=normalise, test_views=test_views, train_views=train_views, attack=attack, final=final,
                 allow_incomplete=allow_incomplete)
    click.echo(result.message)
    if final:
        click.echo(f"final classifier (trained on every labelled item) -> {out.rstrip('/')}/model")


@main.command()
@click.option("--model", required=True, help="A classifier saved by `train fit --final` (OUT/model, or OUT itself).")
@click.option("--store", default=None, help="Feature store to label (its extractor settings must be the model's).")
@click.option("--audio", multiple=True, metavar="FILE",
              help="Audio file(s) to label instead, embedded with the model's extractor settings (repeatable).")
@click.option("--out", required=True, help="Predictions as Parquet: ids, pred, one prob_<label> column per class.")
@click.option("--device", default="cpu", show_default=True, help="torch device for --audio embedding.")
@storage_options_option
@verbosity_option
def predict(model, store, audio, out, device, storage_options):
    """Label a store's items (or audio files) with a saved classifier; writes OUT (.parquet)."""
    from mirage.train.final import predict_audio, predict_store

    if bool(store) == bool(audio):
        raise click.UsageError("expected exactly one of --store or --audio")
    if store:
        table = run(predict_store, model, store, out, storage_options=storage_options)
    else:
        table = run(predict_audio, model, list(audio), out, storage_options=storage_options, device=device)
    counts = table["pred"].value_counts().sort_index()
    click.echo(f"{len(table)} items labelled ({', '.join(f'{k} {v}' for k, v in counts.items())}) -> {out}")


def _compare_method_options(fn):
    """Settings of single compare methods (train.methods) and the fingerprint cache."""
    fn = click.option("--cache", default=None, metavar="DIR|off",
                      help="Keep fingerprinted generator fits/generations and fold results in DIR (e.g. "
                           "$MIRAGE_CACHE/compare), shared by runs; default: inside OUT (a rerun into the same OUT "
                           "reuses them); off: no reuse.")(fn)
    fn = click.option("--mtl-option", "mtl_options", multiple=True, metavar="KEY=VALUE",
                      help="mtl-aug setting (as train fit --mtl-option), e.g. --mtl-option epochs=30 (repeatable).")(fn)
    fn = click.option("--calibrate-alpha", type=click.FloatRange(min=0.0), default=None,
                      help="calibrate: covariance inflation alpha (times I, standardised units; default 0.1).")(fn)
    fn = click.option("--calibrate-k", type=click.IntRange(min=0), default=None,
                      help="calibrate: nearest classes whose covariance each class borrows (default 2).")(fn)
    return fn


def _method_options(mixup_pairs, calibrate_k, calibrate_alpha, mtl_options) -> dict:
    cal = {k: v for k, v in (("k", calibrate_k), ("alpha", calibrate_alpha)) if v is not None}
    mtl = _key_values(mtl_options, "--mtl-option")
    return {"mixup": {"pairs": mixup_pairs}, **({"calibrate": cal} if cal else {}), **({"mtl-aug": mtl} if mtl else {})}


@main.command()
@_common
@click.option("--methods", default="none,smote,mixup,noise,cgan,infogan", show_default=True,
              help="Comma-separated methods: none, smote, mixup, noise, calibrate (class Gaussians with covariance "
                   "borrowed from the nearest classes), cgan (λ=0), infogan (MI-regularised), mtl-aug (the multitask "
                   "network; needs a store with views), auto (per outer fold, none or a baseline, chosen on inner folds).")
@click.option("--n", "n", default="4x", show_default=True, help="Synthetic rows per fold: Nx of the real training items, or a count.")
@click.option("--lambda-mi", type=click.FloatRange(min=0.0), default=None, help="MI weight of the infogan generator (augment's default).")
@click.option("--gen-epochs", type=click.IntRange(min=0), default=None, help="Generator (stage 2) epochs (augment's default).")
@click.option("--gen-option", "gen_options", multiple=True, metavar="KEY=VALUE",
              help="Any other augment fit setting for cgan/infogan, e.g. --gen-option diversity=0.5 (repeatable).")
@click.option("--mi-band", default=None, metavar="LO,HI",
              help="infogan: keep only samples whose per-sample MI score lies in [LO, HI] (augment generate --mi-band).")
@click.option("--balanced", is_flag=True, help="infogan: draw labels uniformly instead of from the training prior.")
@click.option("--mixup-pairs", type=click.Choice(["any", "same"]), default="any", show_default=True,
              help="mixup partners: any class (classic mix-up, soft labels) or the anchor's class.")
@click.option("--select", type=click.Choice(["none", "inner"]), default="none", show_default=True,
              help="inner: choose each baseline's n and synthetic weight per outer fold on 3 inner leave-speakers-out "
                   "folds of its training speakers (generators keep their settings); method auto chooses among none "
                   "and the baselines the same way.")
@_compare_method_options
@_synthetic_loss_options
@_dask_options
@storage_options_option
@verbosity_option
def compare(store, methods, n, min_mi, mode, evaluation, out, classifier, seed, lambda_mi, gen_epochs, gen_options, mi_band,
            balanced, mixup_pairs, select, workers, scheduler, storage_options, normalise,
            calibrate_k, calibrate_alpha, mtl_options, cache, **synthetic_loss):
    """Compare augmentation methods on the same folds and seeds; writes OUT/compare.json, compare.md, plots."""
    from mirage.train.compare import compare as compare_fn

    gen = {**_key_values(gen_options), **({"epochs": gen_epochs} if gen_epochs is not None else {})}
    generate_opts = {**({"mi_band": mi_band} if mi_band else {}), **({"balanced": True} if balanced else {})}
    result = run(compare_fn, store, out, methods=methods, n=n, min_mi=min_mi, mode=mode, evaluation=evaluation,
                 classifier=classifier, seed=seed, workers=workers, scheduler=scheduler, lambda_mi=lambda_mi,
                 storage_options=storage_options, generator_options=gen, generate_options=generate_opts,
                 classifier_options=_classifier_settings(synthetic_loss),
                 baseline_options=_method_options(mixup_pairs, calibrate_k, calibrate_alpha, mtl_options),
                 progress=True, normalise=normalise,
                 select=select, cache=cache)
    click.echo(result.message)


@main.command()
@click.option("--train", "train_stores", required=True, metavar="A[,B...]", help="Training feature store(s), comma-separated.")
@click.option("--test", "test_store", required=True, metavar="C", help="Test feature store (another corpus).")
@click.option("--out", required=True, help="Output folder (metrics.json, confusion.png).")
@click.option("--label-map", default=None, metavar="FILE",
              help='JSON {store_label: common_label} (null drops a label); default: canonical label names.')
@click.option("--normalise", type=click.Choice(["global", "corpus", "none"]), default="global", show_default=True,
              help="global: z-score with the training corpora's statistics. corpus: each corpus with its own "
                   "(the test corpus's from its unlabelled features, transductive). none: raw features.")
@click.option("--classifier", type=click.Choice(["linear", "mlp"]), default="linear", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random step.")
@click.option("--methods", default=None, metavar="M,...",
              help="Also run these augmentation methods on the training corpora (none,smote,mixup,noise,calibrate,"
                   "cgan,infogan); each gets a Δ vs none paired over the test corpus's speakers (metrics.json 'methods').")
@click.option("--n", "n", default="4x", show_default=True, help="--methods: synthetic rows, Nx (times the training rows) or a count.")
@click.option("--min-mi", type=click.FloatRange(0.0, 1.0), default=None, help="--methods infogan: drop shards below this MI score.")
@_synthetic_loss_options
@storage_options_option
@verbosity_option
def cross(train_stores, test_store, out, label_map, normalise, classifier, seed, methods, n, min_mi, storage_options,
          **classifier_settings):
    """Cross-corpus SER: train on A[,B...], test on C over their common labels; writes OUT/metrics.json."""
    from mirage.train.cross import cross as cross_fn

    result = run(cross_fn, train_stores, test_store, out, label_map=label_map, classifier=classifier, seed=seed,
                 normalise=normalise, methods=methods, n=n, min_mi=min_mi,
                 classifier_options=_classifier_settings(classifier_settings), storage_options=storage_options)
    click.echo(result.message)


def _key_values(pairs, hint: str = "--gen-option") -> dict:
    """``("diversity=0.5", "cond_d=true")`` -> {"diversity": 0.5, "cond_d": True} (values parsed as JSON when they can be)."""
    import json

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=hint)
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


if __name__ == "__main__":  # pragma: no cover
    main()
