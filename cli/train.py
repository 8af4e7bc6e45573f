"""``train``: fit/evaluate emotion classifiers and compare augmentation methods."""

from __future__ import annotations

import click

from mirage.cli.common import given_settings, run, settings_options, storage_options_option, verbosity_option


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mirage-ser", prog_name="train", message="%(prog)s (mirage-ser) %(version)s")
def main() -> None:
    """Train light emotion classifiers on feature stores (+ synthetic shards) and compare augmentations."""


def _dask_options(fn):
    fn = click.option("--scheduler", default=None, metavar="ADDR", help="Address of an existing Dask scheduler.")(fn)
    fn = click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
                      help="Start a local Dask cluster with N worker processes (0: in-process).")(fn)
    return fn


def _synthetic_loss_options(fn):
    """The classifier's settings (train.classifier.ClassifierConfig), generated from its fields."""
    from mirage.train.classifier_config import ClassifierConfig

    return settings_options(ClassifierConfig)(fn)


def _classifier_settings(options: dict) -> dict:
    """The classifier settings the user gave (the dataclass keeps every default)."""
    from mirage.train.classifier_config import ClassifierConfig

    return given_settings(options, ClassifierConfig)[0]


def _fit_settings(fn):
    """``train fit``'s own settings (train.fit_config.TrainFitConfig), generated from its fields."""
    from mirage.train.fit_config import TrainFitConfig

    return settings_options(TrainFitConfig)(fn)


@main.command()
@click.option("--store", required=True, help="Real feature store (path or fsspec URL).")
@click.option("--out", required=True, help="Output folder (metrics.json, plots).")
@click.option("--classifier", type=click.Choice(["linear", "mlp"]), default="linear", show_default=True)
@click.option("--synthetic", multiple=True, metavar="MANIFEST",
              help="Synthetic shard set: folder or its manifest.parquet (repeatable); each fold uses the shards whose generator never saw its test speakers.")
@_fit_settings
@click.option("--mtl-option", "mtl_options", multiple=True, metavar="KEY=VALUE",
              help="mtl-aug setting, e.g. --mtl-option w_aug=0 (ablate the aug-type task), w_recon, w_emotion, hidden, "
                   "epochs, lr, batch_size, dropout, weight_decay (repeatable).")
@_synthetic_loss_options
@_dask_options
@storage_options_option
@verbosity_option
def fit(store, out, classifier, synthetic, mtl_options, workers, scheduler, storage_options, **options):
    """Evaluate a classifier on real (+ synthetic) features; writes OUT/metrics.json and OUT/confusion.png."""
    from mirage.featstore.runtime import Runtime
    from mirage.train.fit import fit as fit_fn
    from mirage.train.fit_config import TrainFitConfig

    own, rest = given_settings(options, TrainFitConfig)
    config = run(TrainFitConfig.from_kwargs, **own, synthetic=tuple(synthetic), classifier=classifier,
                 classifier_options=_classifier_settings(rest), mtl_options=_key_values(mtl_options, "--mtl-option"))
    runtime = run(Runtime, storage_options=storage_options, workers=workers, scheduler=scheduler, progress=True)
    result = run(fit_fn, store, out, config, runtime=runtime)
    click.echo(result.message)
    if config.final:
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
    """Settings of single compare methods (train.methods)."""
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


def _compare_settings(fn):
    """``train compare``'s own settings (train.compare_config.CompareConfig), generated from its fields."""
    from mirage.train.compare_config import CompareConfig

    return settings_options(CompareConfig)(fn)


@main.command()
@click.option("--store", required=True, help="Real feature store (path or fsspec URL).")
@click.option("--out", required=True, help="Output folder (compare.json, compare.md, plots).")
@click.option("--classifier", type=click.Choice(["linear", "mlp"]), default="linear", show_default=True)
@_compare_settings
@click.option("--gen-epochs", type=click.IntRange(min=0), default=None, help="Generator (stage 2) epochs (augment's default).")
@click.option("--gen-option", "gen_options", multiple=True, metavar="KEY=VALUE",
              help="Any other augment fit setting for cgan/infogan, e.g. --gen-option diversity=0.5 (repeatable).")
@click.option("--mi-band", default=None, metavar="LO,HI",
              help="infogan: keep only samples whose per-sample MI score lies in [LO, HI] (augment generate --mi-band).")
@click.option("--balanced", is_flag=True, help="infogan: draw labels uniformly instead of from the training prior.")
@click.option("--generate-option", "generate_options", multiple=True, metavar="KEY=VALUE",
              help="Any other augment generate setting for infogan, e.g. --generate-option speaker_codes=train (repeatable).")
@click.option("--mixup-pairs", type=click.Choice(["any", "same"]), default="any", show_default=True,
              help="mixup partners: any class (classic mix-up, soft labels) or the anchor's class.")
@_compare_method_options
@_synthetic_loss_options
@_dask_options
@storage_options_option
@verbosity_option
def compare(store, out, classifier, gen_epochs, gen_options, mi_band, balanced, generate_options, mixup_pairs, workers,
            scheduler, storage_options, calibrate_k, calibrate_alpha, mtl_options, **options):
    """Compare augmentation methods on the same folds and seeds; writes OUT/compare.json, compare.md, plots."""
    from mirage.featstore.runtime import Runtime
    from mirage.train.compare import compare as compare_fn
    from mirage.train.compare_config import CompareConfig

    own, rest = given_settings(options, CompareConfig)
    gen = {**_key_values(gen_options, fields=_fit_fields()), **({"epochs": gen_epochs} if gen_epochs is not None else {})}
    from mirage.augment.config import GenerateConfig

    generate_opts = {**_key_values(generate_options, "--generate-option", fields=GenerateConfig),
                     **({"mi_band": mi_band} if mi_band else {}), **({"balanced": True} if balanced else {})}
    config = run(CompareConfig.from_kwargs, **own, classifier=classifier, classifier_options=_classifier_settings(rest),
                 generator_options=gen, generate_options=generate_opts,
                 baseline_options=_method_options(mixup_pairs, calibrate_k, calibrate_alpha, mtl_options))
    runtime = run(Runtime, storage_options=storage_options, workers=workers, scheduler=scheduler, progress=True)
    result = run(compare_fn, store, out, config, runtime=runtime)
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


def _key_values(pairs, hint: str = "--gen-option", *, fields=None) -> dict:
    """``("diversity=0.5", "cond_d=true")`` -> {"diversity": 0.5, "cond_d": True}.

    With ``fields`` (a settings dataclass) a value of one of its fields is parsed as that
    field's type; any other value as JSON when it can be (e.g. fit_generator's ``use_text``,
    mtl-aug's settings)."""
    import dataclasses
    import json

    from mirage.featstore.settings import parse_text

    names = {f.name for f in dataclasses.fields(fields)} if fields is not None else set()

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=hint)
        if key in names:
            out[key] = run(parse_text, fields, key, value, flag=hint)
            continue
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _fit_fields():
    from mirage.augment.config import FitConfig

    return FitConfig


if __name__ == "__main__":  # pragma: no cover
    main()
