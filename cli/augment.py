"""`augment`: fit an MI-regularised generator on a feature store, write MI-scored synthetic shards."""

from __future__ import annotations

import click

from mirage.augment.config import FitConfig, GenerateConfig
from mirage.cli.common import echo_json, given_settings, run, settings_options, storage_options_option, verbosity_option


class _UnitFloat(click.ParamType):
    name = "[0-1]"

    def convert(self, value, param, ctx):
        from mirage.augment.counts import parse_unit_float
        from mirage.featstore.errors import ConfigError

        try:
            return parse_unit_float(value, flag=param.opts[0] if param else "value")
        except ConfigError as e:
            self.fail(str(e).split(": ", 1)[-1], param, ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="mirage-ser", prog_name="augment", message="%(prog)s (mirage-ser) %(version)s")
def main():
    """MI-regularised generative feature augmentation for speech emotion recognition."""


@main.command()
@click.option("--store", required=True, help="Labelled feature store (path or fsspec URL).")
@click.option("--out", required=True, help="Model dir to write (weights.safetensors, config.json, history.csv/png).")
@click.option("--mode", type=click.Choice(["ser", "multimodal"]), default="ser", show_default=True,
              help="ser: audio features from c = y; multimodal: c = (y, t), also predicts t' (needs text).")
@click.option("--text/--no-text", "use_text", default=None,
              help="Condition G on text codes too (default: only in multimodal mode; --no-text forces c = y).")
@click.option("--exclude-speakers", default="", help="Comma-separated speaker ids left out of training (a test fold).")
@settings_options(FitConfig)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace a generator fitted on another store in --out.")
@storage_options_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
@verbosity_option
def fit(store, out, mode, use_text, exclude_speakers, quiet, **options):
    """Train the alignment heads and the InfoGAN generator on a labelled store."""
    from mirage.augment.fit import fit_generator
    from mirage.featstore.runtime import Runtime

    settings, rest = given_settings(options, FitConfig)
    runtime = run(Runtime, storage_options=rest.pop("storage_options", None), progress=not quiet)
    model = run(fit_generator, store, out, mode=mode, use_text=use_text, exclude_speakers=exclude_speakers,
                config=run(FitConfig.from_kwargs, **settings), runtime=runtime, **rest)
    from mirage.augment.checkpoint import read_config

    final = run(read_config, str(model), options.get("storage_options"))["final"]
    score = f" (MI score of its samples {final['mi_score']:.3f})" if final.get("mi_score") is not None else ""
    click.echo(f"wrote generator to {model}{score}")


@main.command()
@click.option("--model", required=True, help="Model dir written by `augment fit`.")
@click.option("--out", required=True, help="Output dir for shards and manifest.parquet.")
@settings_options(GenerateConfig)
@click.option("--store", default=None, help="Check the model against this store's dims.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace shards of another run in --out.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@storage_options_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
@verbosity_option
def generate(model, out, quiet, as_json, **options):
    """Write MI-scored synthetic feature shards and their manifest (resumable)."""
    from mirage.augment.generate import generate as run_generate
    from mirage.featstore.runtime import Runtime

    settings, rest = given_settings(options, GenerateConfig)
    runtime = run(Runtime, storage_options=rest.pop("storage_options", None), progress=not quiet)
    res = run(run_generate, model, out, config=run(GenerateConfig.from_kwargs, **settings), runtime=runtime, **rest)
    if as_json:
        echo_json({k: getattr(res, k) for k in ("manifest_path", "n_items", "n_requested", "n_shards", "n_rejected",
                                                "complete", "message", "shards")})
    else:
        click.echo(res.message)


@main.command()
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--plot", default=None, help="Write a PNG of real vs generated features (2-D embedding).")
@click.option("--method", type=click.Choice(["tsne", "pca"]), default="tsne", show_default=True)
@click.option("--store", default=None, help="Real features to plot (default: the store the generator was fitted on).")
@click.option("--min-mi", type=_UnitFloat(), default=None, help="Only shards with at least this MI score.")
@click.option("--max-points", type=int, default=2000, show_default=True, help="Per side (real / generated).")
@click.option("--c2st/--no-c2st", default=True, show_default=True,
              help="Score each shard by a two-sample classifier accuracy (c2st_acc: 0.5 = indistinguishable from real).")
@click.option("--fidelity/--no-fidelity", default=True, show_default=True,
              help="Score each shard by precision/recall, density/coverage (k=5 neighbours) and a per-class "
                   "Fréchet distance against the real rows.")
@click.option("--c2st-rows", type=click.IntRange(min=10), default=2000, show_default=True,
              help="Rows per side (real / generated) for c2st_acc, sampled with --seed.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampling, t-SNE and c2st folds.")
@click.option("--quiet", is_flag=True, help="No progress bar (shown on a terminal only).")
@storage_options_option
@verbosity_option
def inspect(path, as_json, quiet, **options):
    """Summarise a synthetic shard set (PATH: its folder or manifest.parquet)."""
    from mirage.augment.inspect import inspect_shards

    info = run(inspect_shards, path, progress=not quiet, **options)
    if as_json:
        echo_json(info)
        return
    click.echo(f"{info['path']}: {info['n_items']} items in {info['n_shards']} shards"
               + (f" (requested {info['n_requested']})" if info.get("n_requested") else ""))
    if info["mi_score_mean"] is not None:
        click.echo(f"MI score: mean {info['mi_score_mean']:.3f}, min {info['mi_score_min']:.3f}")
    if info.get("c2st_acc_mean") is not None:
        click.echo(f"two-sample classifier accuracy (0.5 = indistinguishable from real): mean {info['c2st_acc_mean']:.3f}")
    elif info.get("c2st_reason"):
        click.echo(f"two-sample classifier accuracy: n/a ({info['c2st_reason']})")
    if info.get("precision_mean") is not None:
        click.echo("fidelity/diversity (size-weighted means): " + ", ".join(
            f"{k} {info[k + '_mean']:.3f}" for k in ("precision", "recall", "density", "coverage", "frechet")
            if info.get(k + "_mean") is not None))
    click.echo("labels: " + ", ".join(f"{k} {v}" for k, v in info["label_counts"].items()))
    if info.get("plot"):
        click.echo(f"plot: {info['plot']}")
