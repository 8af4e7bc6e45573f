"""`featstore`: cache audio/text embeddings of a speech emotion corpus in a feature store."""

from __future__ import annotations

import click

from mirage.cli.common import LayerChoice, echo_json, run, storage_options_option, verbosity_option


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


@main.command()
@click.option("--corpus", required=True, help="Corpus name (see `featstore corpora`).")
@click.option("--root", default=None, help="Corpus folder in its native layout (the demo corpus needs none).")
@click.option("--store", required=True, help="Output store: a path or fsspec URL (.zarr folder or .h5 file).")
@click.option("--format", "format_", type=click.Choice(["zarr", "hdf5"]), default="zarr", show_default=True)
@click.option("--audio-model", default=None, help="whisper-base (the default), whisper-tiny.en, logmel, egemaps, or a HF model id/path.")
@click.option("--audio-layer", type=LayerChoice("all"), default=None,
              help="Hidden layer of a Whisper/HF audio model (default: Whisper's middle layer, 3 of 6 for base; HF models: the last); "
                   "'all' also stores every layer as audio_layers.")
@click.option("--window-s", default=None, metavar="auto|N",
              help="Whisper: pad each clip to N-s windows (default 30, Whisper's own input) or encode it at its own "
                   "length rounded up to whole seconds (auto: ~20x faster on short clips, slightly lower UAR).")
@click.option("--pooling", type=click.Choice(["mean", "meanstd"]), default=None, help="Pooling over frames (default: the extractor's own; logmel meanstd, models mean).")
@click.option("--text-model", default="minilm", show_default=True, help="minilm, none, or a HF model id/path.")
@click.option("--text-layer", type=int, default=None, help="Hidden layer of a HF text model (default: last).")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--chunk-rows", type=int, default=None, help="Rows per chunk (= per resumable unit); default: auto.")
@click.option("--workers", type=int, default=0, help="Run on a local Dask cluster with N worker processes.")
@click.option("--scheduler", default=None, help="Address of an existing Dask scheduler (tcp://host:port).")
@click.option("--device", default="cpu", show_default=True, help="torch device for the models.")
@click.option("--strict", is_flag=True, help="Stop at the first bad audio file instead of skipping it.")
@click.option("--overwrite", is_flag=True, help="Replace a store made with other settings.")
@click.option("--limit", type=int, default=None, help="Only the first N items (for a quick try).")
@click.option("--views", default=None, metavar="SPEC,...",
              help="Augmented views to store beside each item, e.g. clean,noise:snr=10,speed:0.9,pitch:2,reverb "
                   "(noise kinds: white, pink, brown, babble; one row per item and view, see `featstore info`).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the views' random parameters.")
@click.option("--unlabelled-root", default=None, metavar="DIR",
              help="Also extract every audio file under DIR as an unlabelled item (for --method mtl-aug's auxiliary losses; "
                   "speaker = first sub-folder).")
@storage_options_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
@verbosity_option
def extract(corpus, root, store, format_, audio_model, audio_layer, window_s, pooling, text_model, text_layer, batch_size,
            chunk_rows, workers, scheduler, device, strict, overwrite, limit, views, seed, unlabelled_root, storage_options, quiet):
    """Extract embeddings for a whole corpus into a feature store (resumable)."""
    from mirage.featstore.extract import extract as run_extract

    res = run(run_extract, corpus, store=store, root=root, audio_model=audio_model, audio_layer=audio_layer,
              window_s=window_s, pooling=pooling, text_model=text_model, text_layer=text_layer, format=format_, batch_size=batch_size,
              chunk_rows=chunk_rows, workers=workers, scheduler=scheduler, strict=strict, overwrite=overwrite,
              storage_options=storage_options, device=device, progress=not quiet, limit=limit, views=views, seed=seed,
              unlabelled_root=unlabelled_root)
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
