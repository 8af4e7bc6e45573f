"""One corruption conformance class, subclassed by every kind of file mirage reads back:
Zarr and HDF5 feature stores, synthetic shards, generator checkpoints and shard manifests.

Each subclass says how to make a healthy instance, how its readers read it, and what
"flip a byte", "truncate" and "delete a chunk" (or "tamper") mean for it; the base class
asserts that every reader refuses each damage with a typed, one-line error naming the path.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from mirage.featstore.errors import MirageError

from tests.augment.conftest import fit_small, make_store


def _flip(path, offset=None):
    size = os.path.getsize(path)
    at = size // 2 if offset is None else offset
    with open(path, "r+b") as fh:
        fh.seek(at)
        b = fh.read(1)
        fh.seek(at)
        fh.write(bytes([b[0] ^ 0x20]))


def _truncate(path):
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) // 2)


class CorruptionConformance:
    """Subclasses define ``make(tmp) -> path``, ``readers(path) -> {name: callable}`` and the
    damages in ``damages`` (name -> method name taking the path)."""

    damages: dict[str, str] = {"flip a byte": "flip", "truncate": "truncate", "delete a chunk": "delete"}

    def make(self, tmp):  # pragma: no cover - abstract
        raise NotImplementedError

    def readers(self, path) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def names(self, path) -> str:
        """What the message must name (the damaged store, shard, checkpoint or manifest)."""
        return str(path)

    def test_intact_reads(self, tmp_path):
        path = self.make(tmp_path)
        for read in self.readers(path).values():
            read()

    @pytest.mark.parametrize("damage", ["flip a byte", "truncate", "delete a chunk", "tamper"])
    def test_damage_is_refused_in_one_line(self, tmp_path, damage):
        if damage not in self.damages:
            pytest.skip(f"{type(self).__name__} has no '{damage}'")
        path = self.make(tmp_path)
        getattr(self, self.damages[damage])(path)
        for what, read in self.readers(path).items():
            with pytest.raises(MirageError) as e:
                read()
            msg = str(e.value)
            assert "\n" not in msg and msg.strip(), (what, msg)
            assert self.names(path) in msg, (what, msg)


# -- feature stores ---------------------------------------------------------------------------

def _store_readers(path):
    from mirage.augment.data import load_training_data
    from mirage.featstore.store import open_store
    from mirage.train.dataset import load_real
    from mirage.train.loaders import clear_store_cache

    def train_read():
        clear_store_cache()
        load_real(str(path))

    def verify_read():
        from mirage.featstore.store import verify

        problems = verify(str(path))["problems"]
        if problems:
            raise MirageError(f"{path}: {problems[0]}")

    return {"train fit (load_real)": train_read,
            "augment fit (load_training_data)": lambda: load_training_data(str(path), mode="ser"),
            "content hash": lambda: open_store(str(path)).content_hash(),
            "featstore verify": verify_read}


def _chunk(path, chunk=1):
    return os.path.join(str(path), "audio", "c", str(chunk), "0")


class TestZarrStoreCorruption(CorruptionConformance):
    def make(self, tmp):
        path = tmp / "store.zarr"
        make_store(path, n_per=6).close()
        return path

    def readers(self, path):
        return _store_readers(path)

    def flip(self, path):
        _flip(_chunk(path))

    def truncate(self, path):
        _truncate(_chunk(path))

    def delete(self, path):
        os.remove(_chunk(path))


class TestHdf5StoreCorruption(CorruptionConformance):
    damages = {"flip a byte": "flip", "truncate": "truncate", "delete a chunk": "delete"}

    def make(self, tmp):
        from mirage.featstore.store import open_store, write_store

        src = tmp / "src.zarr"
        make_store(src, n_per=6).close()
        with open_store(str(src)) as s:
            arrays = {n: s.read(n) for n in ("audio", "text")}
            items = s.items.drop(columns=["row"])
        path = tmp / "store.h5"
        write_store(str(path), items=items, arrays=arrays, metadata={"kind": "features", "corpus": "fixture"},
                    format="hdf5", chunk_rows=16).close()
        return path

    def readers(self, path):
        return _store_readers(path)

    def _span(self, path):
        import h5py

        with h5py.File(path, "r") as f:
            ds = f["audio"]
            info = ds.id.get_chunk_info_by_coord((ds.chunks[0], 0))
            return int(info.byte_offset), int(info.size)

    def flip(self, path):
        off, size = self._span(path)
        _flip(path, off + size // 2)

    def truncate(self, path):
        _truncate(path)

    def delete(self, path):  # an HDF5 chunk cannot be removed: its bytes are zeroed
        off, size = self._span(path)
        with open(path, "r+b") as fh:
            fh.seek(off)
            fh.write(b"\0" * size)


# -- synthetic shards and their manifest ------------------------------------------------------

@pytest.fixture(scope="module")
def shard_set(store_path, tmp_path_factory):
    from mirage.augment.generate import generate

    base = tmp_path_factory.mktemp("corrupt-shards")
    gen = fit_small(store_path, base / "gen", mode="ser", exclude_speakers=("s01",), epochs=1, align_epochs=1)
    generate(str(gen), str(base / "synth"), n=200, shard_size=100, seed=0, progress=False)
    return base / "synth"


def _shard_readers(path, labels):
    from mirage.train.loaders import clear_store_cache
    from mirage.train.synthetic import load_synthetic, read_manifests

    def read():
        clear_store_cache()
        _, kept = read_manifests([str(path)])
        load_synthetic(kept, labels, mode="ser", audio_dim=32)

    def inspect():
        from mirage.augment.inspect import inspect_shards

        inspect_shards(str(path), c2st=False)

    return {"train fit --synthetic (read_manifests + load_synthetic)": read}


class TestShardCorruption(CorruptionConformance):
    damages = {"flip a byte": "flip", "truncate": "truncate", "delete a chunk": "delete", "tamper": "tamper"}

    @pytest.fixture(autouse=True)
    def _set(self, shard_set):
        self.source = shard_set

    def make(self, tmp):
        dst = tmp / "synth"
        shutil.copytree(self.source, dst)
        return dst

    def names(self, path):
        return str(path / "shard-00001.zarr")

    def readers(self, path):
        from tests.augment.conftest import LABELS

        return _shard_readers(path, list(LABELS))

    def flip(self, path):
        _flip(_chunk(path / "shard-00001.zarr", 0))

    def truncate(self, path):
        _truncate(_chunk(path / "shard-00001.zarr", 0))

    def delete(self, path):
        os.remove(_chunk(path / "shard-00001.zarr", 0))

    def tamper(self, path):
        """Its record says another generator made it (what copying in another fold's shard looks like)."""
        meta = path / "shard-00001.zarr" / "mirage.json"
        record = json.loads(meta.read_text())
        record["trained_speakers"] = sorted([*record["trained_speakers"], "s01"])
        meta.write_text(json.dumps(record))


class TestManifestCorruption(CorruptionConformance):
    damages = {"flip a byte": "flip", "truncate": "truncate", "delete a chunk": "delete", "tamper": "tamper"}

    @pytest.fixture(autouse=True)
    def _set(self, shard_set):
        self.source = shard_set

    def make(self, tmp):
        dst = tmp / "synth"
        shutil.copytree(self.source, dst)
        return dst

    def readers(self, path):
        from tests.augment.conftest import LABELS

        return _shard_readers(path, list(LABELS))

    def flip(self, path):
        # a value in a data page (a shard path; the file's middle can fall on the footer's column
        # statistics, which hold no value): pages carry no checksum, the manifest's SHA-256 catches it
        data = (path / "manifest.parquet").read_bytes()
        _flip(path / "manifest.parquet", data.index(b"shard-") + 3)

    def truncate(self, path):
        _truncate(path / "manifest.parquet")

    def delete(self, path):  # the manifest's "chunk": a shard it lists
        shutil.rmtree(path / "shard-00000.zarr")

    def tamper(self, path):
        """Edit a row: it claims a speaker set that the shard does not record."""
        from mirage.augment import shards
        from mirage.featstore.store.location import Location

        loc = Location(str(path))
        rows, run = shards.raw_rows(loc)
        rows[0]["trained_speakers"] = ["s02", "s03"]
        shards.write_manifest(loc, rows, run)


# -- generator checkpoints --------------------------------------------------------------------

class TestCheckpointCorruption(CorruptionConformance):
    damages = {"flip a byte": "flip", "truncate": "truncate", "delete a chunk": "delete", "tamper": "tamper"}

    @pytest.fixture(autouse=True)
    def _model(self, trained_model):
        self.source = trained_model

    def make(self, tmp):
        dst = tmp / "gen"
        shutil.copytree(self.source, dst)
        return dst

    def readers(self, path):
        from mirage.augment.checkpoint import load_checkpoint
        from mirage.augment.generate import generate

        return {"load_checkpoint": lambda: load_checkpoint(str(path)),
                "augment generate": lambda: generate(str(path), str(path.parent / "o"), n=10, progress=False)}

    def flip(self, path):
        _flip(path / "weights.safetensors")

    def truncate(self, path):
        _truncate(path / "weights.safetensors")

    def delete(self, path):
        os.remove(path / "codes.parquet")

    def tamper(self, path):
        """One tensor overwritten and the file re-saved whole (a valid safetensors file)."""
        from safetensors.numpy import load_file, save_file

        tensors = load_file(str(path / "weights.safetensors"))
        name = sorted(k for k in tensors if k.startswith("generator."))[0]
        tensors[name] = np.zeros_like(tensors[name])
        save_file(tensors, str(path / "weights.safetensors"))
