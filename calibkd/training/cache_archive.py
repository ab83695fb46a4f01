"""Share a model cache: export it to one archive, import it elsewhere.

An instructor (or a GPU box) trains the study once and exports the cache; a
class imports the archive and runs the notebooks with ``train_missing=False``:
every model then loads (checked against its checksum and its parameters, as
any cached model is) and nothing is retrained. Checkpoints are plain
``state_dict`` files loaded with ``weights_only=True``.

    python -m calibkd.training.cache_archive export study-models.tar.gz
    python -m calibkd.training.cache_archive import study-models.tar.gz
    python -m calibkd.training.cache_archive list
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import tarfile
from pathlib import Path
from typing import Sequence

from calibkd.errors import CheckpointError
from calibkd.io import atomic_write_bytes
from calibkd.paths import cache_dir
from calibkd.training.model_cache import check_record, load_checkpoint

#: A cache entry is ``<16 hex digits>.pt`` (weights) plus ``.json`` (record).
ENTRY = re.compile(r"^([0-9a-f]{16})\.(pt|json)$")
MANIFEST = "calibkd-cache.json"


class CacheArchiveError(CheckpointError):
    """An archive is not a calibkd cache, or one of its entries is corrupt."""


def entries(root: Path) -> dict[str, dict]:
    """The finished entries of the cache at ``root``: key -> record (an entry
    without its JSON record is unfinished and left out)."""
    found = {}
    for record in sorted(Path(root).glob("*.json")):
        match = ENTRY.match(record.name)
        if match and (record.with_suffix(".pt")).is_file():
            found[match.group(1)] = json.loads(record.read_text())
    return found


def export_cache(archive: Path, root: Path | None = None, keys: Sequence[str] | None = None) -> int:
    """Write the cache entries (all, or ``keys``) to a gzipped tar ``archive``,
    atomically; returns how many entries it holds."""
    root = Path(root or cache_dir())
    available = entries(root)
    chosen = list(available) if keys is None else list(keys)
    missing = [k for k in chosen if k not in available]
    if missing:
        raise CacheArchiveError(f"not in the cache {root}: {missing}")
    if not chosen:
        raise CacheArchiveError(f"the cache {root} has no finished models to export")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        manifest = {key: {"recipe": available[key].get("recipe"), "sha256": available[key].get("sha256")}
                    for key in chosen}
        _add(tar, MANIFEST, json.dumps({"format": "calibkd-cache", "version": 1, "models": manifest},
                                       indent=1, sort_keys=True).encode())
        for key in chosen:
            _add(tar, f"{key}.pt", (root / f"{key}.pt").read_bytes())
            _add(tar, f"{key}.json", (root / f"{key}.json").read_bytes())
    atomic_write_bytes(Path(archive), buffer.getvalue())
    return len(chosen)


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(payload), 0o644, 0
    tar.addfile(info, io.BytesIO(payload))


def import_cache(archive: Path, root: Path | None = None) -> dict[str, int]:
    """Add the entries of ``archive`` to the cache at ``root``; every
    checkpoint is checked (checksum, loadable with ``weights_only=True``)
    before anything is written. Entries already present are kept."""
    root = Path(root or cache_dir())
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            files = {}
            for member in tar.getmembers():
                if not member.isfile() or (member.name != MANIFEST and not ENTRY.match(member.name)):
                    raise CacheArchiveError(f"{archive}: unexpected member {member.name!r}; not a calibkd cache archive")
                files[member.name] = tar.extractfile(member).read()
    except (OSError, tarfile.TarError, EOFError) as error:
        raise CacheArchiveError(f"{archive} is not a readable gzipped tar ({error})") from None
    if MANIFEST not in files:
        raise CacheArchiveError(f"{archive} has no {MANIFEST}; not a calibkd cache archive")
    try:
        models = json.loads(files[MANIFEST])["models"]
        if not isinstance(models, dict):
            raise TypeError("'models' is not a mapping")
    except (ValueError, KeyError, TypeError) as error:
        raise CacheArchiveError(f"{archive}: its {MANIFEST} is malformed ({type(error).__name__}: {error}); "
                                "not a calibkd cache archive") from None
    checked = {}
    for key, meta in models.items():
        weights, record = files.get(f"{key}.pt"), files.get(f"{key}.json")
        if weights is None or record is None or not ENTRY.match(f"{key}.pt") or not isinstance(meta, dict):
            raise CacheArchiveError(f"{archive}: model {key!r} lacks its weights or its record")
        try:
            parsed = json.loads(record)
        except ValueError as error:
            raise CacheArchiveError(f"{archive}: the record of model {key} is not valid JSON ({error})") from None
        if not isinstance(parsed, dict):
            raise CacheArchiveError(f"{archive}: the record of model {key} is not a JSON object")
        _verify(key, weights, parsed, meta)
        checked[key] = (weights, record)
    added = 0
    for key, (weights, record) in checked.items():
        if (root / f"{key}.json").is_file():
            continue
        atomic_write_bytes(root / f"{key}.pt", weights)
        atomic_write_bytes(root / f"{key}.json", record)  # last: an entry without it is unfinished
        added += 1
    return {"added": added, "present": len(checked) - added}


def _verify(key: str, weights: bytes, record: dict, meta: dict) -> None:
    import hashlib
    import tempfile

    digest = hashlib.sha256(weights).hexdigest()
    if digest != record.get("sha256") or digest != meta.get("sha256"):
        raise CacheArchiveError(f"model {key}: the weights do not match their checksum; the archive is corrupt")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{key}.pt"
        path.write_bytes(weights)
        _, stored = load_checkpoint(path)  # weights_only=True; raises CheckpointError for a foreign file
    try:
        check_record(record, stored, f"model {key}")
    except CheckpointError as error:
        raise CacheArchiveError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m calibkd.training.cache_archive", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=None, help="cache folder (default: $CALIBKD_CACHE or .cache/models)")
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export", help="write the cache (or some keys) to an archive")
    exp.add_argument("archive", type=Path)
    exp.add_argument("--keys", nargs="+", default=None)
    imp = sub.add_parser("import", help="add an archive's models to the cache")
    imp.add_argument("archive", type=Path)
    sub.add_parser("list", help="the cache's models")
    args = parser.parse_args(argv)
    try:
        if args.command == "export":
            count = export_cache(args.archive, args.cache, args.keys)
            print(f"exported {count} models to {args.archive}")
        elif args.command == "import":
            counts = import_cache(args.archive, args.cache)
            print(f"imported {counts['added']} models ({counts['present']} were already there)")
        else:
            for key, record in entries(args.cache or cache_dir()).items():
                print(f"{key}  {record.get('recipe')}  test accuracy {record.get('test_accuracy', float('nan')):.4f}")
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
