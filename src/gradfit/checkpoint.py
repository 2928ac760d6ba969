"""Checkpoints: the whole state of a fit between two compiled chunks, on disk.

A fit resumed from a checkpoint ends bit-identical to the same fit run without a
break: the loop's state (θ, the optimiser's state, each start's stop flags), the
number of steps done, and the history kept so far are stored exactly, and everything
else a step depends on (the mini-batches of step t, the learning rate at step t) is a
function of the settings and t.

Format, version 1: one NumPy ``.npz`` archive (a zip of ``.npy`` arrays; no pickles)
holding

- ``header``: UTF-8 JSON as bytes: ``format`` ("gradfit-checkpoint"), ``version`` (1),
  ``gradfit`` and ``jax`` (the versions that wrote it), ``fingerprint`` (the data's
  SHA-256, the starts' SHA-256, and every setting that changes the run: model, loss,
  reduction, optimiser with its schedule, dtype, caps, tol, seed, batch size, record
  stride, history budget, chunk length), ``steps_done``, ``elapsed`` (seconds) and
  ``finished``;
- ``carry_0``, ``carry_1``, ...: the leaves of the loop state, in JAX's flattening order
  of (θ, optimiser state, stopped, stop code, stop step);
- ``history_*``: the kept history rows and each start's last row (`gradfit.history`).

It is written atomically (`gradfit.files.atomic_write`). A checkpoint is resumed only by
a fit whose fingerprint is the same; otherwise the error lists what differs.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GradfitError
from .files import atomic_write

FORMAT = "gradfit-checkpoint"
VERSION = 1


def digest(*arrays: np.ndarray) -> str:
    """SHA-256 of arrays' shapes, dtypes and bytes: equal for equal data, whatever their source."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint as read back: its header, the loop state's leaves, and the history state."""

    header: dict[str, Any]
    leaves: list[np.ndarray]
    history: dict[str, np.ndarray]

    @property
    def steps_done(self) -> int:
        return int(self.header["steps_done"])

    @property
    def elapsed(self) -> float:
        return float(self.header.get("elapsed", 0.0))


def save(path: str | Path, fingerprint: dict[str, Any], steps_done: int, elapsed: float,
         leaves: list[np.ndarray], history: dict[str, np.ndarray], finished: bool = False) -> Path:
    """Write a checkpoint atomically; returns its path."""
    import jax

    from . import __version__

    header = {"format": FORMAT, "version": VERSION, "gradfit": __version__, "jax": jax.__version__,
              "fingerprint": fingerprint, "steps_done": int(steps_done), "elapsed": float(elapsed),
              "finished": bool(finished)}
    arrays = {"header": np.frombuffer(json.dumps(header).encode(), np.uint8)}
    arrays.update({f"carry_{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)})
    arrays.update({f"history_{k}": np.asarray(v) for k, v in history.items()})
    return atomic_write(path, lambda file: np.savez(file, **arrays))


def load(path: str | Path) -> Checkpoint:
    """Read a checkpoint; a file that is not one (or is damaged) gets an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise GradfitError(f"no checkpoint at {path}: give the file a fit wrote with checkpoint= (--checkpoint)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        header = json.loads(arrays.pop("header").tobytes().decode())
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError, EOFError) as exc:
        raise GradfitError(f"{path} is not a readable gradfit checkpoint ({type(exc).__name__}); "
                           "start the fit afresh without resuming") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise GradfitError(f"{path} is not a gradfit checkpoint")
    if header.get("version") != VERSION:
        raise GradfitError(f"{path} is a version {header.get('version')} checkpoint; this gradfit reads "
                           f"version {VERSION}: finish it with the gradfit that wrote it ({header.get('gradfit')})")
    count = sum(1 for name in arrays if name.startswith("carry_"))
    leaves = [arrays[f"carry_{i}"] for i in range(count)]
    history = {name[len("history_"):]: a for name, a in arrays.items() if name.startswith("history_")}
    return Checkpoint(header, leaves, history)


def restore(carry: Any, leaves: list[np.ndarray], path: str | Path) -> Any:
    """A fit's state (a pytree of arrays) with a checkpoint's leaves, on the device, checked leaf by
    leaf against the fit's own: a state of another shape is an error, not a silent broadcast."""
    import jax

    mine, tree = jax.tree_util.tree_flatten(carry)
    if len(mine) != len(leaves) or any(np.shape(a) != np.shape(b) or a.dtype != b.dtype
                                       for a, b in zip(mine, leaves)):
        raise GradfitError(f"checkpoint {path} holds an optimiser state of another shape; "
                           "resume with the same optimiser and starts, or start afresh without resuming")
    return jax.device_put(jax.tree_util.tree_unflatten(tree, leaves))


def check_target(path: str | Path) -> None:
    """Refuse to start a new fit over an unfinished checkpoint, or over a file that is not one."""
    path = Path(path)
    if not path.exists():
        return
    if path.is_dir():
        raise GradfitError(f"the checkpoint {path} is a folder; give a file name")
    try:
        found = load(path)
    except GradfitError:
        raise GradfitError(f"{path} exists and is not a gradfit checkpoint: give the checkpoint another name") from None
    if not found.header.get("finished"):
        raise GradfitError(
            f"{path} holds an unfinished fit ({found.steps_done:,} steps done): continue it with resume= "
            f"(--resume {path}), or give the new fit another checkpoint file, or delete this one"
        )


#: How each fingerprint entry is named in the message about a mismatch.
_WHAT = {"data": "the data", "starts": "the starting points", "model": "the model", "loss": "the loss",
         "optimizer": "the optimiser", "dtype": "dtype", "steps": "the step cap", "epochs": "epochs",
         "batch_size": "the batch size", "tol": "tol", "seed": "the seed", "history_every": "history_every",
         "max_history": "max_history", "chunk": "the chunk length"}


def check(found: Checkpoint, wanted: dict[str, Any], path: str | Path) -> None:
    """Refuse a checkpoint written by another fit, saying what differs."""
    have, want = _flat(found.header.get("fingerprint", {})), _flat(wanted)
    differ = []
    for key in sorted(set(have) | set(want), key=lambda k: (k.split(".")[0] not in ("data", "starts"), k)):
        a, b = have.get(key), want.get(key)
        if a != b:
            top = key.split(".")[0]
            if top in ("data", "starts"):
                differ.append(f"{_WHAT[top]} differ")
            else:
                name = _WHAT.get(top, top) + key[len(top):]
                differ.append(f"{name}: {_short(a)} in the checkpoint, {_short(b)} now")
    if differ:
        raise GradfitError(f"checkpoint {path} was written by another fit ({'; '.join(differ)}); resume with the "
                           "same data and settings, or start afresh without resuming")


def _flat(d: Any, prefix: str = "") -> dict[str, str]:
    """Nested settings as {"optimizer.schedule.lr": "0.05", ...}, each value as JSON text."""
    if isinstance(d, dict):
        out: dict[str, str] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: json.dumps(d, sort_keys=True)}


def _short(text: str | None) -> str:
    text = "nothing" if text is None else text
    return text if len(text) <= 80 else text[:77] + "..."

