"""The torch device a command runs its models on, checked before any work is done.

A device torch does not know (``--device bogus``) or one this machine lacks (``--device
cuda`` without a CUDA driver) would otherwise fail deep inside the first model call, after
the output folder was created; here it is one line up front.
"""

from __future__ import annotations

from mirage.featstore.errors import ConfigError


def check_device(device: str, *, flag: str = "--device") -> str:
    """Return ``device`` when torch can use it here; raise :class:`ConfigError` otherwise."""
    import torch

    try:
        dev = torch.device(str(device))
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{flag}: expected cpu, cuda, cuda:N or mps, got {device!r}") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ConfigError(f"{flag} {device}: expected a CUDA device, but torch sees none on this machine "
                              "(no driver, no GPU or a CPU-only torch build); use --device cpu")
        if dev.index is not None and dev.index >= n:
            raise ConfigError(f"{flag} {device}: expected a CUDA device index below {n} (this machine has {n}); "
                              f"use --device cuda:0")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{flag} {device}: expected Apple's MPS backend, but it is not available here; use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{flag}: expected cpu, cuda, cuda:N or mps, got {device!r}")
    return str(device)
