"""Checkpoints as one unit: numbered folders and a pointer that is switched atomically.

The one format for every saved policy (``arena train``'s learners and final policy, ``arena
init-policy``, ``Trainer.save``), in the manner of TensorFlow's ``CheckpointManager`` (numbered
checkpoints plus one small state file naming the latest) and Orbax (a checkpoint is written into a
temporary folder and renamed when complete)::

    DIR/
      checkpoint.json              the pointer: {"format": "arena-checkpoint", "latest": "ckpt-000007", ...}
      ckpt-000006/                 an older checkpoint (the newest KEEP are kept)
      ckpt-000007/
        manifest.json              checkpoint number, and each file's size and sha256
        policy.safetensors         weights; the header's metadata records the checkpoint number
        policy.json                what rebuilds the net (``agents.neural``), with "checkpoint": 7
        optimizer.pt, state.json   a learner's extras (tensors only; "checkpoint": 7 inside each)

How a save goes (``write``): every file is written into ``DIR/.tmp-ckpt-000007-PID/`` and fsynced,
then ``manifest.json``; the folder is fsynced and renamed to ``ckpt-000007``, ``DIR`` is fsynced; then
the pointer is written to a temporary file, fsynced and renamed over ``checkpoint.json``, and ``DIR``
fsynced again. Only then are old folders (beyond the newest ``keep``) and leftovers of dead writers
removed. A process killed at any moment leaves the pointer on a complete checkpoint: the old one, or
the new one.

How a read goes (``open_checkpoint``): the pointer is parsed (bounded in size, its ``latest`` must be a
``ckpt-N`` name in ``DIR``), then the folder's manifest; every file's own record of the checkpoint
number must agree (else "mismatched set"), then every file needed must have the manifest's size and
hash (else "truncated or altered"). Every failure is one ``CheckpointError`` line.

Nothing here imports torch: the pointer, the manifest and safetensors headers are plain JSON.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

FORMAT, FORMAT_VERSION = "arena-checkpoint", 1
POINTER = "checkpoint.json"
MANIFEST = "manifest.json"
KEEP = 3
#: the biggest JSON file we read (pointer, manifest, policy metadata, learner state)
MAX_JSON_BYTES = 1 << 20
#: the biggest file a checkpoint may hold (weights, optimizer moments): 4 GiB
MAX_FILE_BYTES = 4 << 30
#: the biggest safetensors header (names, dtypes, shapes, offsets of a few dozen tensors)
MAX_HEADER_BYTES = 1 << 20
_NAME = re.compile(r"^ckpt-(\d{6,12})$")
_TMP = re.compile(r"^\.tmp-ckpt-(\d+)-(\d+)$")
_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}$")
#: safetensors dtypes and their sizes in bytes
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt, truncated, absurd or a mismatched set (one line)."""


# -- writing ---------------------------------------------------------------------------------------
def folder_name(number: int) -> str:
    return f"ckpt-{number:06d}"


def fsync_path(path: Path, directory: bool = False) -> None:
    """fsync a file (or, with ``directory``, a folder's entries) by path."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: Path, obj) -> None:
    """``obj`` as JSON into ``path``: a temporary file, fsynced, renamed, the folder fsynced."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent, directory=True)


def numbers(root: Path) -> list[int]:
    """The numbers of the complete checkpoint folders in ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(int(m.group(1)) for p in root.iterdir() if (m := _NAME.match(p.name)) and p.is_dir())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write(root: str | os.PathLike, files: dict[str, Callable[[Path, int], None]], keep: int = KEEP,
          info: dict | None = None) -> Path:
    """Write one checkpoint into ``root`` and point ``root/checkpoint.json`` at it; returns its folder.

    ``files`` maps each file name to ``writer(path, number)``, which writes that file at ``path`` and
    records ``number`` (the new checkpoint's number) inside it. ``info`` goes into the pointer and the
    manifest (e.g. the learner's policy version), for people reading them.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for name in files:
        if not _FILE.match(name) or name in (MANIFEST, POINTER):
            raise ValueError(f"bad checkpoint file name {name!r}")
    _remove_leftovers(root)
    number = max(numbers(root) + [_pointed_number(root)], default=0) + 1
    tmp = root / f".tmp-ckpt-{number}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        listing = {}
        for name, writer in files.items():
            path = tmp / name
            writer(path, number)
            fsync_path(path)
            listing[name] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "checkpoint": number, "files": listing,
                    **({"info": info} if info else {})}
        with open(tmp / MANIFEST, "w") as fh:
            json.dump(manifest, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        fsync_path(tmp, directory=True)
        final = root / folder_name(number)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
            # another writer in this folder took the number meanwhile: the files record it, so write anew
            shutil.rmtree(tmp)
            return write(root, files, keep, info)
        fsync_path(root, directory=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_json_atomic(root / POINTER, {"format": FORMAT, "format_version": FORMAT_VERSION,
                                       "latest": final.name, "checkpoint": number,
                                       **({"info": info} if info else {})})
    _prune(root, keep, final.name)
    return final


def _pointed_number(root: Path) -> int:
    try:
        return open_pointer(root)[1]
    except CheckpointError:
        return 0


def _remove_leftovers(root: Path) -> None:
    """Temporary folders of writers that died (or of this process) before they renamed them."""
    for p in root.iterdir():
        m = _TMP.match(p.name)
        if m and p.is_dir() and (int(m.group(2)) == os.getpid() or not _alive(int(m.group(2)))):
            shutil.rmtree(p, ignore_errors=True)
        elif p.name.startswith(f".{POINTER}.tmp-"):
            pid = p.name.rpartition("-")[2]
            if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
                p.unlink(missing_ok=True)


def _prune(root: Path, keep: int, current: str) -> None:
    nums = numbers(root)
    for n in nums[: max(len(nums) - max(int(keep), 1), 0)]:
        if folder_name(n) != current:
            shutil.rmtree(root / folder_name(n), ignore_errors=True)


# -- reading ---------------------------------------------------------------------------------------
def _size(path: Path, what: str, limit: int, missing: str, too_large: str) -> int:
    """The size of ``path`` in bytes, checked against ``limit`` before anything is read."""
    try:
        size = path.stat().st_size
    except OSError:
        raise CheckpointError(f"{path}: {missing}") from None
    if size > limit:
        raise CheckpointError(f"{path}: {size:,} bytes is {too_large}")
    return size


def read_json(path: Path, what: str, limit: int = MAX_JSON_BYTES) -> dict:
    """A JSON object from ``path``, refusing a file over ``limit`` bytes before reading it."""
    path = Path(path)
    _size(path, what, limit, f"{what} is missing", f"too large for {what} (at most {limit:,})")
    try:
        obj = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: {what} is not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: {what} must be a JSON object")
    return obj


def _count(value, what: str, where) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CheckpointError(f"{where}: {what} must be a non-negative integer, got {value!r}")
    return value


def open_pointer(root: str | os.PathLike) -> tuple[Path, int]:
    """``(folder, number)`` that ``root/checkpoint.json`` names."""
    root = Path(root)
    ptr = read_json(root / POINTER, "the checkpoint pointer", limit=64 * 1024)
    if ptr.get("format") != FORMAT:
        raise CheckpointError(f"{root / POINTER}: not an {FORMAT} pointer")
    latest = ptr.get("latest")
    m = _NAME.match(latest) if isinstance(latest, str) else None
    if m is None:
        raise CheckpointError(f"{root / POINTER}: 'latest' must name a ckpt-NNNNNN folder, got {latest!r}")
    number = _count(ptr.get("checkpoint"), "'checkpoint'", root / POINTER)
    if int(m.group(1)) != number:
        raise CheckpointError(f"{root / POINTER}: names {latest} but checkpoint {number}")
    folder = root / latest
    if not folder.is_dir():
        raise CheckpointError(f"{root / POINTER} names {latest}, which is missing")
    return folder, number


def safetensors_header(path: str | os.PathLike) -> dict:
    """The parsed header of a safetensors file, checked against the file's size before any tensor is read:
    ``{name: {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}``. Raises ``CheckpointError``."""
    path = Path(path)
    size = _size(path, "policy weights", MAX_FILE_BYTES, "weights file is missing", "too large for policy weights")
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: truncated weights file ({size} bytes)")
        n = struct.unpack("<Q", head)[0]
        if n > MAX_HEADER_BYTES or 8 + n > size:
            raise CheckpointError(f"{path}: corrupt or truncated weights file (header of {n:,} bytes in a "
                                  f"file of {size:,})")
        raw = fh.read(n)
    try:
        header = json.loads(raw)
    except ValueError:
        raise CheckpointError(f"{path}: corrupt weights file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt weights file (its header is not a JSON object)")
    data = size - 8 - n
    spans = []
    for name, t in header.items():
        if name == "__metadata__":
            if not isinstance(t, dict) or not all(isinstance(v, str) for v in t.values()):
                raise CheckpointError(f"{path}: corrupt weights file (bad __metadata__)")
            continue
        ok = isinstance(t, dict) and t.get("dtype") in DTYPE_BYTES and isinstance(t.get("shape"), list) \
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in t["shape"]) \
            and isinstance(t.get("data_offsets"), list) and len(t["data_offsets"]) == 2 \
            and all(isinstance(o, int) and not isinstance(o, bool) for o in t["data_offsets"])
        if not ok:
            raise CheckpointError(f"{path}: corrupt weights file (bad entry for tensor {name!r})")
        begin, end = t["data_offsets"]
        elems = 1
        for d in t["shape"]:
            elems *= d
        if not 0 <= begin <= end or end - begin != elems * DTYPE_BYTES[t["dtype"]]:
            raise CheckpointError(f"{path}: corrupt weights file (tensor {name!r}: offsets {begin}..{end} do not "
                                  f"fit its shape {t['shape']} of {t['dtype']})")
        if end > data:
            raise CheckpointError(f"{path}: truncated weights file (tensor {name!r} ends at byte {end:,} of "
                                  f"{data:,})")
        spans.append((begin, end))
    spans.sort()
    at = 0
    for begin, end in spans:
        if begin != at:
            raise CheckpointError(f"{path}: corrupt weights file (tensor data overlaps or leaves gaps)")
        at = end
    if at != data:
        raise CheckpointError(f"{path}: corrupt weights file ({data - at:,} bytes after the last tensor)")
    return header


def recorded_number(path: Path) -> int | None:
    """The checkpoint number a file records inside itself (JSON: ``"checkpoint"``; safetensors: the
    header metadata); ``None`` for other kinds, whose readers check it (``optimizer.pt``)."""
    if path.suffix == ".json":
        value = read_json(path, "checkpoint file").get("checkpoint")
    elif path.suffix == ".safetensors":
        value = safetensors_header(path).get("__metadata__", {}).get("checkpoint")
        value = int(value) if isinstance(value, str) and value.isdigit() else value
    else:
        return None
    if value is None:
        raise CheckpointError(f"{path}: records no checkpoint number")
    return _count(value, "its checkpoint number", path)


@dataclass
class Checkpoint:
    """One complete, verified checkpoint folder."""

    folder: Path
    number: int
    manifest: dict

    def path(self, name: str) -> Path:
        return self.folder / name

    @property
    def info(self) -> dict:
        info = self.manifest.get("info")
        return info if isinstance(info, dict) else {}


def verify(folder: str | os.PathLike, number: int | None = None, need: Iterable[str] | None = None) -> Checkpoint:
    """Check one checkpoint folder: its manifest, every file's recorded number (a mismatched set is
    refused), and the size and sha256 of the files in ``need`` (default: all of them)."""
    folder = Path(folder)
    manifest = read_json(folder / MANIFEST, "the checkpoint manifest")
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"{folder / MANIFEST}: not an {FORMAT} manifest")
    own = _count(manifest.get("checkpoint"), "'checkpoint'", folder / MANIFEST)
    listing = manifest.get("files")
    if not isinstance(listing, dict) or not listing or not all(
            isinstance(k, str) and _FILE.match(k) and isinstance(v, dict) for k, v in listing.items()):
        raise CheckpointError(f"{folder / MANIFEST}: 'files' must list the checkpoint's files")
    records = {"manifest.json": own}
    if number is not None:
        records["the pointer"] = number
    for name in listing:
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{folder}: {name} is missing (the manifest lists it)")
        n = recorded_number(path)
        if n is not None:
            records[name] = n
    if len(set(records.values())) > 1:
        said = ", ".join(f"{k} says {v}" for k, v in records.items())
        raise CheckpointError(f"{folder}: mismatched set of checkpoint files ({said}); refusing to load it")
    need = list(listing) if need is None else list(need)
    for name in need:
        entry = listing.get(name)
        if entry is None:
            raise CheckpointError(f"{folder}: holds no {name}")
        path = folder / name
        size, want = path.stat().st_size, entry.get("bytes")
        if size != want:
            raise CheckpointError(f"{path}: truncated or altered ({size:,} bytes; the manifest says {want!r})")
        if size > MAX_FILE_BYTES:
            raise CheckpointError(f"{path}: {size:,} bytes is too large for a checkpoint file")
        if _sha256(path) != entry.get("sha256"):
            raise CheckpointError(f"{path}: corrupt (its sha256 differs from the manifest's)")
    return Checkpoint(folder, own, manifest)


def open_checkpoint(root: str | os.PathLike, need: Iterable[str] | None = None) -> Checkpoint:
    """The checkpoint that ``root/checkpoint.json`` names, verified (see ``verify``)."""
    folder, number = open_pointer(root)
    return verify(folder, number, need)


def has_checkpoint(root: str | os.PathLike) -> bool:
    """Whether ``root`` holds a pointer (a versioned checkpoint, complete or not)."""
    return (Path(root) / POINTER).is_file()


def latest(root: str | os.PathLike) -> Path:
    """The folder ``root/checkpoint.json`` names (not verified: for tools and tests that peek)."""
    return open_pointer(root)[0]


# -- policies: the versioned folder or the single files of earlier runs ------------------------------
POLICY = "policy"


def policy_files(path: str | os.PathLike) -> tuple[Path, Path, Checkpoint | None]:
    """Where the policy named by ``ckpt:PATH`` lives: ``(weights, metadata, checkpoint or None)``.

    ``PATH`` may be a folder with ``checkpoint.json`` (the latest checkpoint, verified), one
    ``ckpt-NNNNNN`` folder, or the single files of earlier runs: ``PATH.safetensors`` + ``PATH.json``
    (``PATH`` given with or without ``.safetensors``), or an old learner folder holding
    ``policy.safetensors``.
    """
    p = Path(path)
    need = (f"{POLICY}.safetensors", f"{POLICY}.json")
    if p.is_dir() and (p / POINTER).is_file():
        ck = open_checkpoint(p, need)
        return ck.path(need[0]), ck.path(need[1]), ck
    if p.is_dir() and (p / MANIFEST).is_file():
        ck = verify(p, None, need)
        return ck.path(need[0]), ck.path(need[1]), ck
    if p.is_dir() and (p / need[0]).is_file():
        p = p / POLICY
    if p.suffix in (".safetensors", ".json"):
        candidates = [p.with_suffix(".safetensors")]
    else:
        candidates = [p.with_name(p.name + ".safetensors"), p.with_suffix(".safetensors")]
    for weights in candidates:
        if weights.is_file():
            meta = weights.with_suffix(".json")
            if not meta.is_file():
                raise CheckpointError(f"{weights}: no policy metadata beside it ({meta.name} is missing)")
            return weights, meta, None
    raise CheckpointError(f"no checkpoint at {path} (expected a folder holding {POINTER}, or "
                          f"{candidates[0].name} with its .json)")
