"""attestation.json: what a finished run folder holds, in sha256s, so that anyone can check later that its
results are the ones that were run (`captcha-bench verify-run`).

A run's attestation lists the sha256 of each of its files (run.json, attempts.csv, timing.jsonl,
details.jsonl, summary.csv, summary.json), the data set's manifest (its sha256 is the data set's identity)
and where it was, every weights or answers file a solver loaded (path and sha256, as run.json recorded them
when the run began), and the commit and library versions the run recorded. `results_sha256` is one sha256
over all of that, a compact handle to quote. A collection's attestation lists its collection.json and each
part's attestation.json. A report written into the folder is not attested: any report can be made again
from the attested files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from bench.provenance import solver_files
from bench.runfolder.files import (ATTEMPTS, COLLECTION, DETAILS, RUN, SUMMARY_CSV, SUMMARY_JSON, TIMING, RunError,
                                   read_collection)
from captchas import dataset as ds
from captchas.output import write_atomic

ATTESTATION = "attestation.json"
KIND = "captcha-bench attestation"
ATTESTED = (RUN, ATTEMPTS, TIMING, DETAILS, SUMMARY_CSV, SUMMARY_JSON)  # a run folder's own files, where present


def file_sha256(path: Path) -> str:
    """sha256 of a file read a megabyte at a time (attempts.csv may hold millions of rows)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sealed(document: dict[str, Any]) -> dict[str, Any]:
    """The document with its results_sha256: one sha256 of everything else in it, as canonical JSON."""
    body = {k: v for k, v in document.items() if k != "results_sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return {**body, "results_sha256": hashlib.sha256(canonical).hexdigest()}


def attest_run(out: Path) -> dict[str, Any]:
    """Write `out`/attestation.json for the finished run in `out`, and return it."""
    document = json.loads((out / RUN).read_text(encoding="utf-8"))
    provenance = document.get("provenance") or {}
    recorded = provenance.get("solver_files") or {}
    loaded: dict[str, dict[str, dict[str, str]]] = {}
    for spec in document.get("solvers", []):
        found = solver_files(str(spec["name"]), dict(spec.get("options") or {}))
        if found:
            loaded[spec["name"]] = {key: {"path": path, "sha256": (recorded.get(spec["name"]) or {}).get(key, sha)}
                                    for key, (path, sha) in found.items()}
    attestation = _sealed({
        "kind": KIND, "version": 1, "run": "run",
        "files": {name: file_sha256(out / name) for name in ATTESTED if (out / name).is_file()},
        "dataset": {"path": document.get("dataset"), "manifest_sha256": document.get("dataset_sha256")},
        "solver_files": loaded,
        "git": provenance.get("git") or {},
        "versions": {**(provenance.get("libraries") or {}), "python": provenance.get("python")},
    })
    write_atomic(out / ATTESTATION, json.dumps(attestation, indent=2) + "\n")
    return attestation


def attest_collection(out: Path) -> dict[str, Any] | None:
    """Write `out`/attestation.json for a finished collection: its collection.json and each part's attestation.
    None, and nothing written, where a part has none (it finished under an older captcha-bench)."""
    folders = [out / str(p["path"]) for p in read_collection(out)["parts"]]
    if not all((folder / ATTESTATION).is_file() for folder in folders):
        return None
    parts = {folder.name: file_sha256(folder / ATTESTATION) for folder in folders}
    attestation = _sealed({"kind": KIND, "version": 1, "run": "collection",
                           "files": {COLLECTION: file_sha256(out / COLLECTION)}, "parts": parts})
    write_atomic(out / ATTESTATION, json.dumps(attestation, indent=2) + "\n")
    return attestation


def verify(out: Path) -> list[str]:
    """Check `out` against its attestation.json: RunError naming the first file that no longer matches (or
    that the attestation does not know); otherwise what was checked, a line each. Files outside the folder
    (the data set's manifest, weights, answers) are checked where they are found, and said to be
    unchecked where they are not."""
    attestation = _read(out)
    if attestation.get("run") == "collection":
        lines = []
        for part, digest in attestation.get("parts", {}).items():
            lines += [f"{part}/{line}" for line in verify(out / part)]
            _match(out / part / ATTESTATION, digest)
        for name, digest in attestation.get("files", {}).items():
            _match(out / name, digest)
            lines.append(f"{name}: matches")
        return lines
    lines = []
    for name in ATTESTED:
        if (out / name).is_file() and name not in attestation["files"]:
            raise RunError(f"{out / name} is not in {out / ATTESTATION}: it was added after the run; remove it, "
                           "or run again")
    for name, digest in attestation["files"].items():
        _match(out / name, digest)
        lines.append(f"{name}: matches")
    data = attestation.get("dataset") or {}
    manifest = Path(str(data.get("path"))) / ds.MANIFEST
    lines.append(_outside(manifest, data.get("manifest_sha256"), "the data set's manifest"))
    for solver, loaded in (attestation.get("solver_files") or {}).items():
        for key, entry in loaded.items():
            lines.append(_outside(Path(entry["path"]), entry["sha256"], f"{solver}'s {key}"))
    return lines


def _read(out: Path) -> dict[str, Any]:
    path = out / ATTESTATION
    if not out.is_dir() or not ((out / RUN).is_file() or (out / COLLECTION).is_file()):
        raise RunError(f"{out} is not a run folder: give a folder that captcha-bench run or sweep wrote")
    if not path.is_file():
        raise RunError(f"{out} has no {ATTESTATION}: the run did not finish (resume it), or an older "
                       "captcha-bench made it (run it again)")
    try:
        attestation = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"{path} is not valid JSON ({e}): it was damaged; run again") from None
    if not isinstance(attestation, dict) or attestation.get("kind") != KIND or not isinstance(attestation.get("files"), dict):
        raise RunError(f"{path} is not a captcha-bench attestation: run again")
    if _sealed(attestation).get("results_sha256") != attestation.get("results_sha256"):
        raise RunError(f"{path} was edited: its results_sha256 no longer matches what it lists; run again")
    return attestation


def _match(path: Path, digest: str) -> None:
    if not path.is_file():
        raise RunError(f"{path} is missing: the attestation lists it; restore it, or run again")
    now = file_sha256(path)
    if now != digest:
        raise RunError(f"{path} no longer matches its attestation (sha256 {digest[:12]} recorded, {now[:12]} now): "
                       "it was changed after the run; restore it, or run again")


def _outside(path: Path, digest: str | None, what: str) -> str:
    """A file outside the run folder: checked where it is found (RunError where it differs)."""
    if not path.is_file():
        return f"{what} ({path}): not found here, not checked"
    if digest is not None:
        _match(path, digest)
    return f"{what} ({path}): matches"
