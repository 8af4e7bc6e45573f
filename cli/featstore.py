"""`featstore`: cache audio/text embeddings of a speech emotion corpus in a feature store."""

from __future__ import annotations

import click

from mirage.cli.common import echo_json, given_settings, run, settings_options, storage_options_option, verbosity_option


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="mirage-ser", prog_name="featstore", message="%(prog)s (mirage-ser) %(version)s")
def main():
    """Feature stores of pretrained audio/text embeddings for speech emotion recognition."""


@main.command()
def corpora():
    """List the supported corpora."""
    from mirage.featstore.corpora import list_corpora

    for c in run(list_corpora):
        click.echo(f"{c.name:<12} {'needs --root' if c.needs_root else 'no download':<13} {c.description}")


@main.command()
def extractors():
    """List the audio and text extractors and what they need."""
    from mirage.featstore.extractors import list_extractors

    for e in run(list_extractors):
        click.echo(f"{e['name']:<16} {e['kind']:<6} needs {e['needs']:<52} {e['description']}")


def _extract_options(fn):
    from mirage.featstore.extract_config import ExtractConfig

    return settings_options(ExtractConfig)(fn)


@main.command()
@click.option("--corpus", required=True, help="Corpus name (see `featstore corpora`).")
@click.option("--store", required=True, help="Output store: a path or fsspec URL (.zarr folder or .h5 file).")
@_extract_options
@click.option("--workers", type=int, default=0, help="Run on a local Dask cluster with N worker processes.")
@click.option("--scheduler", default=None, help="Address of an existing Dask scheduler (tcp://host:port).")
@storage_options_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
@verbosity_option
def extract(corpus, store, workers, scheduler, storage_options, quiet, **options):
    """Extract embeddings for a whole corpus into a feature store (resumable)."""
    from mirage.featstore.extract import extract as run_extract
    from mirage.featstore.extract_config import ExtractConfig
    from mirage.featstore.runtime import Runtime

    settings, _ = given_settings(options, ExtractConfig)
    runtime = run(Runtime, storage_options=storage_options, workers=workers, scheduler=scheduler, progress=not quiet)
    res = run(run_extract, corpus, store=store, config=run(ExtractConfig.from_kwargs, **settings), runtime=runtime)
    s = res.store
    if res.already_complete:
        click.echo(f"{s.url}: already complete ({s.n_items} items); nothing to do")
    else:
        rate = f", {res.audio_s / res.wall_s:.1f} audio-s/s" if res.wall_s > 0 and res.audio_s else ""
        click.echo(f"{s.url}: {s.n_items} items, {len(s.skipped)} skipped, {res.n_units_done_now}/{res.n_units_total} "
                   f"units written in {res.wall_s:.1f} s{rate}")
    if len(s.skipped):
        click.echo(f"skipped items are listed by `featstore info {s.url}`")


@main.command()
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@storage_options_option
def info(path, as_json, storage_options):
    """Summarise a feature store."""
    from mirage.featstore.store import open_store

    with run(open_store, path, storage_options=storage_options) as store:
        data = run(store.info)
    if as_json:
        echo_json({**data, "audio": _short(data["audio"]), "text": _short(data["text"])})
        return
    click.echo(f"store      {data['path']} ({data['format']}, {data['kind']})")
    click.echo(f"corpus     {data['corpus']}: {data['n_items']} items, {data['speakers']} speakers, {data['n_skipped']} skipped")
    click.echo("labels     " + ", ".join(f"{k} {v}" for k, v in data["labels"].items())
               + (f" (+{data['n_unlabelled']} unlabelled)" if data.get("n_unlabelled") else ""))
    if data.get("view_specs", ["clean"]) != ["clean"]:
        click.echo(f"views      {', '.join(data['view_specs'])} ({data['n_source_items']} source items)")
    for kind in ("audio", "text"):
        a = data[kind]
        click.echo(f"{kind:<10} " + (f"{a['extractor']} ({a['dim']}-d)" if a else "none"))
    if data.get("audio_layers"):
        lay = data["audio_layers"]
        click.echo(f"layers     audio_layers: {lay['n_layers']} hidden states x {lay['dim']}-d (audio = state {lay['default_layer']})")
    click.echo(f"hash       {data['content_hash']}")
    for row in data["skipped"]:
        click.echo(f"skipped    {row['utt_id']}: {row['reason']} ({row['message']})")


def _short(arr):
    return None if arr is None else {"extractor": arr["extractor"], "dim": arr["dim"], **{
        k: arr["config"].get(k) for k in ("model", "revision", "layer", "pooling", "sample_rate", "window_s") if k in arr["config"]}}


@main.command()
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@storage_options_option
def verify(path, as_json, storage_options):
    """Check a store's integrity (shapes, status, finite values, content hash)."""
    from mirage.featstore.store import verify as run_verify

    report = run(run_verify, path, storage_options=storage_options)
    if as_json:
        echo_json(report)
    elif report["problems"]:
        for p in report["problems"]:
            click.echo(f"problem: {p}", err=True)
    elif report["state"] == "incomplete":
        click.echo(f"{report['path']}: OK, incomplete ({report['rows_written']}/{report['rows_total']} rows written); "
                   "rerun the same extract command to finish")
    else:
        click.echo(f"{report['path']}: OK ({report['n_items']} items, hash {report['content_hash'][:16]})")
    if report["problems"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
