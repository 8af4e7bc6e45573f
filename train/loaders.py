"""Dask-parallel readers for feature stores and synthetic shards.

Every read is one Dask task per chunk-aligned block (a whole number of store chunks,
about ``block_bytes`` each): never per-row random reads. Rows a fold does not use are
dropped from a block in memory, after the read; blocks holding no wanted row are not read.

* :func:`load_rows` materialises a selection (small stores, test sets, synthetic shards);
* :func:`row_moments` reduces blocks to per-feature sums (standardisation of large data);
* :class:`BlockStream` streams shuffled torch batches: block order is permuted per epoch,
  blocks are read a window ahead (overlapping I/O and checksums with the consumer), and a
  :class:`~train.shuffle.ShuffleBuffer` of whole blocks mixes rows across blocks.

With a distributed ``client`` (or a scheduler other than ``"threads"``) the block reads are
Dask tasks; without one, the same chunk-aligned block reads run on a small local thread
pool (:func:`read_pool`) instead of a Dask graph per window: reads and crc32 checks release
the GIL, and a sliding window keeps the pool busy while batches are consumed. Either way
the same blocks are read and the same rows come out in the same order for the same seed.

DataLoader workers, if any, must start with the spawn method (forking a process after
Dask's or zarr's threads have started can deadlock): use :func:`make_loader`.
"""

from __future__ import annotations

import contextvars
import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from mirage.featstore.store.mapped import MappedRows
from mirage.train.seeds import derive_seed
from mirage.train.stores import current_stores, process_stores, store_token  # noqa: F401  (store_token re-exported)
from mirage.train.shuffle import ShuffleBuffer

log = logging.getLogger(__name__)

#: Default size of one read task (rounded to whole chunks).
BLOCK_BYTES = 8 << 20
#: Threads of the local read pool (no Dask client): ``MIRAGE_READ_THREADS`` overrides it.
READ_THREADS = max(1, min(4, os.cpu_count() or 1))

def cached_store(url: str, storage_options: dict[str, Any] | None = None, token: str | None = None):
    """The open :class:`~featstore.store.FeatureStore` of the current run's cache (see
    :mod:`train.stores`; outside a run, the process cache). With ``token`` (see
    :func:`store_token`), a cached store whose token differs — the path was rewritten since —
    is reopened."""
    return current_stores().get(url, storage_options, token)


def clear_store_cache() -> None:
    """Close the process cache (code outside any run, e.g. tests and benches); runs own their caches."""
    process_stores().close()


@dataclass
class Source:
    """Rows of one store to read: arrays concatenated along features, raw row ids, labels."""

    url: str
    columns: tuple[str, ...]
    rows: np.ndarray
    labels: np.ndarray
    weight: float = 1.0
    storage_options: dict[str, Any] | None = None
    token: str | None = None  # the store's content hash (see store_token)

    def __post_init__(self):
        self.columns = tuple(self.columns)
        self.rows = np.asarray(self.rows, dtype=np.int64)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.rows) != len(self.labels):
            raise ValueError(f"{self.url}: expected one label per row, got {len(self.labels)} labels for {len(self.rows)} rows")
        if len(self.rows) > 1 and np.any(np.diff(self.rows) <= 0):
            raise ValueError(f"{self.url}: Source rows must be strictly ascending")

    @property
    def n_rows(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class Block:
    """Raw rows [start, stop) of source ``source``; its wanted rows are ``rows[lo:hi]``."""

    source: int
    start: int
    stop: int
    lo: int
    hi: int


def feature_dim(source: Source) -> int:
    store = cached_store(source.url, source.storage_options, source.token)
    return int(sum(store.row_width(c) or 1 for c in source.columns))


def plan_blocks(sources: Sequence[Source], *, block_rows: int | None = None,
                block_bytes: int = BLOCK_BYTES) -> list[Block]:
    """Chunk-aligned blocks holding at least one wanted row, in source and row order."""
    blocks: list[Block] = []
    for si, src in enumerate(sources):
        if src.n_rows == 0:
            continue
        store = cached_store(src.url, src.storage_options, src.token)
        chunk = store.chunk_rows
        if block_rows is None:
            row_bytes = 4 * feature_dim(src)
            step = chunk * max(1, block_bytes // max(1, chunk * row_bytes))
        else:
            step = chunk * max(1, -(-int(block_rows) // chunk))
        starts = np.unique((src.rows // step) * step)
        bounds = np.searchsorted(src.rows, np.append(starts, starts[-1] + step))
        for k, start in enumerate(starts.tolist()):
            blocks.append(Block(si, start, min(store.n_rows, start + step), int(bounds[k]), int(bounds[k + 1])))
    return blocks


def read_block(url: str, storage_options: dict[str, Any] | None, token: str | None, columns: tuple[str, ...],
               start: int, stop: int, local_rows: np.ndarray | None, out: np.ndarray | None = None,
               stores=None, mapped: bool = False):
    """The Dask task: contiguous reads of rows [start, stop), wanted rows kept, columns joined.

    With ``out`` (a (rows wanted, D) float32 array, e.g. a slice of the caller's result),
    the columns are written straight into it and ``out`` is returned. ``stores``: the run's
    :class:`~train.stores.StoreCache` (Dask threads do not see the caller's context).
    ``mapped`` (the local streaming path only): a single float32 column whose rows are all
    wanted comes back as a :class:`~featstore.store.mapped.MappedRows` over the memory-mapped
    chunk files (checked like any read; the shuffle buffer gathers from it, so no row is
    copied twice), and wanted rows are gathered straight out of the mapping."""
    store = (current_stores() if stores is None else stores).get(url, storage_options, token)
    read = store.read_rows_mapped if mapped else store.read_rows
    if out is None and len(columns) == 1:
        block = read(columns[0], start, stop)
        block = block.reshape(len(block), -1)
        if isinstance(block, MappedRows):
            if block.dtype == np.float32 and block.dtype.isnative:
                return block if local_rows is None else block.gather(local_rows)
            block = block.gather()
        return np.ascontiguousarray(block if local_rows is None else block[local_rows], dtype=np.float32)
    n = (stop - start) if local_rows is None else len(local_rows)
    widths = [store.row_width(name) or 1 for name in columns]
    if out is None:
        out = np.empty((n, sum(widths)), dtype=np.float32)
    col = 0
    for name, width in zip(columns, widths):
        block = read(name, start, stop)
        block = block.reshape(len(block), -1)
        if isinstance(block, MappedRows):
            block = block.gather(local_rows)  # one copy out of the mapping, wanted rows only
            local_rows_here = None
        else:
            local_rows_here = local_rows
        dst = out[:, col: col + width]
        if local_rows_here is None:
            dst[...] = block
        elif dst.flags.c_contiguous and block.dtype == np.float32:
            np.take(block, local_rows_here, axis=0, out=dst, mode="clip")  # gathered straight into place
        else:
            dst[...] = block[local_rows_here]
        col += width
    return out


def _local_rows(src: Source, blk: Block) -> np.ndarray | None:
    local = src.rows[blk.lo: blk.hi] - blk.start
    return None if len(local) == blk.stop - blk.start else local  # every row wanted: no gather


def _block_args(src: Source, blk: Block) -> tuple:
    return (src.url, src.storage_options, src.token, src.columns, blk.start, blk.stop, _local_rows(src, blk))


def _block_task(src: Source, blk: Block):
    import dask

    return dask.delayed(read_block, pure=False)(*_block_args(src, blk), stores=current_stores())


def _compute(tasks: list, *, scheduler: str, client=None) -> list:
    import dask

    if not tasks:
        return []
    if client is not None:
        return client.gather(client.compute(tasks))
    return list(dask.compute(*tasks, scheduler=scheduler))


def _use_local_pool(scheduler: str, client) -> bool:
    """No distributed client and the threaded scheduler: read blocks on a local thread pool."""
    return client is None and scheduler == "threads"


def read_pool(n_tasks: int | None = None) -> ThreadPoolExecutor:
    """The local read pool (see the module docstring): ``MIRAGE_READ_THREADS`` or :data:`READ_THREADS` threads."""
    try:
        threads = int(os.environ.get("MIRAGE_READ_THREADS", READ_THREADS))
    except ValueError:
        threads = READ_THREADS
    threads = max(1, threads if n_tasks is None else min(threads, n_tasks))
    return _ContextPool(max_workers=threads, thread_name_prefix="mirage-read")


class _ContextPool(ThreadPoolExecutor):
    """Runs each task in the submitting thread's context, so reads use the run's store cache."""

    def submit(self, fn, /, *args, **kwargs):
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


def load_rows(source: Source, *, scheduler: str = "threads", client=None, block_rows: int | None = None,
              block_bytes: int = BLOCK_BYTES) -> np.ndarray:
    """All wanted rows of ``source`` as one (n, D) float32 array, in ``source.rows`` order."""
    blocks = plan_blocks([source], block_rows=block_rows, block_bytes=block_bytes)
    if not blocks:
        return np.zeros((0, feature_dim(source)), dtype=np.float32)
    if _use_local_pool(scheduler, client):
        # each block is read straight into its rows of the result: no per-block arrays, no concatenation
        out = np.empty((int(sum(b.hi - b.lo for b in blocks)), feature_dim(source)), dtype=np.float32)
        if len(blocks) == 1:
            read_block(*_block_args(source, blocks[0]), out=out)
            return out
        with read_pool(len(blocks)) as pool:
            futures = [pool.submit(read_block, *_block_args(source, b), out=out[b.lo - blocks[0].lo: b.hi - blocks[0].lo])
                       for b in blocks]
            for fut in futures:
                fut.result()
        return out
    parts = _compute([_block_task(source, b) for b in blocks], scheduler=scheduler, client=client)
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


def _moments_of(x: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    x64 = x.astype(np.float64, copy=False)
    return len(x), x64.sum(axis=0), np.square(x64).sum(axis=0)


def row_moments(sources: Sequence[Source], *, scheduler: str = "threads", client=None,
                block_rows: int | None = None) -> tuple[int, np.ndarray, np.ndarray]:
    """(count, per-feature sum, per-feature sum of squares) over all wanted rows, in float64."""
    import dask

    blocks = plan_blocks(sources, block_rows=block_rows)
    if _use_local_pool(scheduler, client) and blocks:
        with read_pool(len(blocks)) as pool:
            futures = [pool.submit(lambda b=b: _moments_of(read_block(*_block_args(sources[b.source], b)))) for b in blocks]
            parts = [f.result() for f in futures]
    else:
        tasks = [dask.delayed(_moments_of, pure=False)(_block_task(sources[b.source], b)) for b in blocks]
        parts = _compute(tasks, scheduler=scheduler, client=client)
    dim = feature_dim(sources[0])
    total = (0, np.zeros(dim), np.zeros(dim))
    for n, s, ss in parts:
        total = (total[0] + n, total[1] + s, total[2] + ss)
    return total


@dataclass
class BlockStream(torch.utils.data.IterableDataset):
    """Shuffled (x float32, y int64, w float32) torch batches over ``sources``, one epoch per iteration.

    Each row of every source comes out exactly once per epoch. ``seed`` and the epoch
    (:meth:`set_epoch`) fix the order; the worker count of a DataLoader does not change
    which rows form an epoch, only how blocks are split among workers.
    """

    sources: list[Source]
    batch_size: int = 512
    buffer_blocks: int = 8
    prefetch_blocks: int = 8
    seed: int = 0
    block_rows: int | None = None
    block_bytes: int = BLOCK_BYTES
    scheduler: str = "threads"
    drop_last: bool = False
    client: Any = field(default=None, repr=False)
    epoch: int = 0

    def __post_init__(self):
        super().__init__()
        self._blocks: list[Block] | None = None

    def __getstate__(self):  # a Dask client does not travel to spawned DataLoader workers
        state = dict(self.__dict__)
        state["client"] = None
        return state

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def blocks(self) -> list[Block]:
        if self._blocks is None:
            self._blocks = plan_blocks(self.sources, block_rows=self.block_rows, block_bytes=self.block_bytes)
        return self._blocks

    @property
    def n_rows(self) -> int:
        return int(sum(s.n_rows for s in self.sources))

    @property
    def dim(self) -> int:
        return feature_dim(self.sources[0])

    def _my_blocks(self) -> tuple[list[Block], int]:
        blocks = self.blocks
        order = np.random.default_rng(derive_seed(self.seed, "blocks", self.epoch)).permutation(len(blocks))
        info = torch.utils.data.get_worker_info()
        worker = 0
        if info is not None and info.num_workers > 1:
            order, worker = order[info.id:: info.num_workers], info.id
        return [blocks[i] for i in order.tolist()], worker

    def _fetch(self, blocks: list[Block]) -> Iterator[tuple[Block, np.ndarray]]:
        """Blocks in the given order, read a window or two ahead (a local thread pool without a
        client, Dask tasks with one)."""
        window = max(1, int(self.prefetch_blocks))
        in_worker = torch.utils.data.get_worker_info() is not None  # a DataLoader process has no client
        client = None if in_worker else self.client
        if _use_local_pool(self.scheduler, client):
            yield from self._fetch_local(blocks, 2 * window)
            return
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mirage-prefetch")
        pending: deque = deque()
        groups = [blocks[i: i + window] for i in range(0, len(blocks), window)]

        def submit(group):
            tasks = [_block_task(self.sources[b.source], b) for b in group]
            return pool.submit(_compute, tasks, scheduler=self.scheduler, client=client)

        try:
            nxt = 0
            while nxt < len(groups) and len(pending) < 2:
                pending.append((groups[nxt], submit(groups[nxt])))
                nxt += 1
            while pending:
                group, fut = pending.popleft()
                if nxt < len(groups):
                    pending.append((groups[nxt], submit(groups[nxt])))
                    nxt += 1
                yield from zip(group, fut.result())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _fetch_local(self, blocks: list[Block], ahead: int) -> Iterator[tuple[Block, np.ndarray]]:
        """Blocks in order from a sliding window of at most ``ahead`` block reads in flight."""
        pool = read_pool(len(blocks))
        pending: deque = deque()
        try:
            nxt = 0
            while pending or nxt < len(blocks):
                while nxt < len(blocks) and len(pending) < ahead:
                    b = blocks[nxt]
                    pending.append((b, pool.submit(read_block, *_block_args(self.sources[b.source], b), mapped=True)))
                    nxt += 1
                b, fut = pending.popleft()
                yield b, fut.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        blocks, worker = self._my_blocks()
        rng = np.random.default_rng(derive_seed(self.seed, "rows", self.epoch, worker))
        buf = ShuffleBuffer(batch_size=self.batch_size, capacity_blocks=self.buffer_blocks, rng=rng)
        # one constant weight array per source, sliced per block (the same values as a fresh np.full)
        longest = max((b.hi - b.lo for b in blocks), default=0)
        weights = [np.full(longest, np.float32(s.weight), dtype=np.float32) for s in self.sources]
        for w in weights:
            w.flags.writeable = False
        for blk, x in self._fetch(blocks):
            src = self.sources[blk.source]
            y = src.labels[blk.lo: blk.hi]
            buf.add((x, y, weights[blk.source][: len(y)]))
            for xb, yb, wb in buf.batches(final=False):
                yield torch.from_numpy(xb), torch.from_numpy(yb), torch.from_numpy(wb)
        for xb, yb, wb in buf.batches(final=True, drop_last=self.drop_last):
            yield torch.from_numpy(xb), torch.from_numpy(yb), torch.from_numpy(wb)


def make_loader(stream: BlockStream, *, num_workers: int = 0) -> torch.utils.data.DataLoader:
    """A DataLoader over a :class:`BlockStream` (which already yields batches).

    Workers, if any, start with the spawn method and split the blocks between them.
    """
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        import multiprocessing

        kwargs["multiprocessing_context"] = multiprocessing.get_context("spawn")
    return torch.utils.data.DataLoader(stream, batch_size=None, num_workers=int(num_workers), **kwargs)
