"""The settings of ``featstore extract`` as one validated dataclass.

The one home of every extract default and validation rule; ``featstore extract``'s options
are generated from these fields (:func:`cli.common.settings_options`). How the extraction runs
(Dask, storage options, progress) is a :class:`featstore.runtime.Runtime`, not a setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mirage.featstore.errors import ConfigError
from mirage.featstore.settings import check_int, check_known, setting

FORMATS = ("zarr", "hdf5")
POOLINGS = ("mean", "meanstd")


@dataclass(frozen=True)
class ExtractConfig:
    root: str | None = setting(None, "Corpus folder in its native layout (the demo corpus needs none).")
    format: str = setting("zarr", "Store format (an .h5 file for hdf5).", choices=FORMATS)
    audio_model: str | None = setting(
        None, "whisper-base (the default), whisper-tiny.en, logmel, egemaps, or a HF model id/path.")
    audio_layer: int | str | None = setting(
        None, "Hidden layer of a Whisper/HF audio model (default: Whisper's middle layer, 3 of 6 for base; HF models: "
              "the last); 'all' also stores every layer as audio_layers.", cli_kind="str", metavar="K|all")
    window_s: str | int | None = setting(
        None, "Whisper: pad each clip to N-s windows (default 30, Whisper's own input) or encode it at its own length "
              "rounded up to whole seconds (auto: ~20x faster on short clips, slightly lower UAR).",
        cli_kind="str", metavar="auto|N")
    pooling: str | None = setting(None, "Pooling over frames (default: the extractor's own; logmel meanstd, models mean).",
                                  choices=POOLINGS)
    text_model: str | None = setting("minilm", "minilm, none, or a HF model id/path.")
    text_layer: int | None = setting(None, "Hidden layer of a HF text model (default: last).")
    batch_size: int = setting(8, "Clips per encoder call.")
    chunk_rows: int | None = setting(None, "Rows per chunk (= per resumable unit); default: auto.")
    device: str = setting("cpu", "torch device for the models.")
    strict: bool = setting(False, "Stop at the first bad audio file instead of skipping it.")
    overwrite: bool = setting(False, "Replace a store made with other settings.")
    limit: int | None = setting(None, "Only the first N items (for a quick try).")
    views: str | None = setting(
        None, "Augmented views to store beside each item, e.g. clean,noise:snr=10,speed:0.9,pitch:2,reverb (noise kinds: "
              "white, pink, brown, babble; one row per item and view, see `featstore info`).", metavar="SPEC,...")
    seed: int = setting(0, "Seed of the views' random parameters.")
    unlabelled_root: str | None = setting(
        None, "Also extract every audio file under DIR as an unlabelled item (for --method mtl-aug's auxiliary losses; "
              "speaker = first sub-folder).", metavar="DIR")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "ExtractConfig":
        check_known(cls, kwargs, "featstore extract")
        return cls(**kwargs)

    def __post_init__(self) -> None:
        check_int(self.chunk_rows, "--chunk-rows", what="a positive number of rows", allow_none=True)
        check_int(self.limit, "--limit", what="a positive number of items", allow_none=True)
        check_int(self.batch_size, "--batch-size", what="a positive number of clips")
        if self.format not in FORMATS:
            raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise ConfigError(f"--pooling: expected one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        check_int(self.seed, "--seed", minimum=-2**63, what="an integer")
        check_int(self.text_layer, "--text-layer", minimum=-2**31, what="a layer index", allow_none=True)
        # the CLI gives --audio-layer as text: a layer index or "all"
        object.__setattr__(self, "audio_layer", parse_layer(self.audio_layer))


def parse_layer(value: int | str | None) -> int | str | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    text = str(value).strip().lower()
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--audio-layer: expected a layer index or 'all', got {value!r}") from None
