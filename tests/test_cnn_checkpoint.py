"""The CNN's checkpoints: what loads and what is refused, and what a run records of the weights it read."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed")

from captchas.schemes import image_scheme  # noqa: E402
from solvers.cnn import plan as cnn_plan  # noqa: E402
from solvers.cnn import solver as cnn_solver  # noqa: E402

from tests.tiny import train_tiny as _train  # noqa: E402


def test_a_foreign_pickle_payload_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"config": {}, "charset": "A", "state_dict": {}, "payload": Payload()}, path)
    with pytest.raises(ValueError, match="holds more than tensors and plain data, refused"):
        cnn_solver.load_checkpoint(path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        cnn_solver.load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a captcha-bench CNN checkpoint"):
        cnn_solver.load_checkpoint(tmp_path / "other.pt")


class Payload:
    """Anything that is not a tensor or plain data."""


def test_a_checkpoint_for_another_preset_or_charset_is_refused(tmp_path: Path) -> None:
    _train(tmp_path / "easy.pt", epochs=0.5)
    path = str(tmp_path / "easy.pt")
    with pytest.raises(ValueError, match="was trained on preset 'easy', the data set is 'hard'"):
        cnn_solver.CNNSolver(checkpoint=path, preset="hard")
    with pytest.raises(ValueError, match="cannot write 'abd'.*a different charset"):
        cnn_solver.CNNSolver(checkpoint=path, charset="ABDabd")
    assert cnn_solver.CNNSolver(checkpoint=path, preset="hard", charset="ABDabd", any_preset=True).solve([]) == []
    with pytest.raises(ValueError, match="no shipped weights for preset 'nosuch'"):
        cnn_solver.CNNSolver(preset="nosuch")
    general = cnn_solver.CNNSolver()  # no preset: the general reader, which writes digits and both cases
    assert len(general.first.config.charset) == 62 and general.first.nets[0].barred == ()


@pytest.mark.skipif(not cnn_plan.shipped("medium").is_file(), reason="no shipped medium weights")
def test_a_run_records_which_shipped_weights_the_preset_chose(tmp_path: Path) -> None:
    from bench import benchmark, provenance
    from bench.run import RunConfig, SolverSpec
    from captchas.dataset import sha256_bytes
    from captchas.generate import make_dataset

    data = make_dataset(image_scheme("medium"), 2, 5, tmp_path / "d", preset="medium")
    config = benchmark.with_dataset_options(RunConfig((SolverSpec("cnn"),)), data)
    files = provenance.provenance(data, config, {}, {}, [])["solver_files"]
    assert files == {"cnn": {"checkpoint": sha256_bytes(cnn_plan.shipped("medium").read_bytes())}}
    mine = tmp_path / "mine.pt"
    mine.write_bytes(b"other weights")
    config = benchmark.with_dataset_options(RunConfig((SolverSpec("cnn", {"checkpoint": str(mine)}),)), data)
    assert provenance.provenance(data, config, {}, {}, [])["solver_files"] == {"cnn": {"checkpoint": sha256_bytes(b"other weights")}}


def test_every_shipped_cascade_names_shipped_weights_of_its_preset() -> None:
    cascades = sorted(cnn_plan.WEIGHTS.glob("*.cascade.json"))
    for path in cascades:
        preset = path.name.removesuffix(".cascade.json")
        files = cnn_solver.CNNSolver.files(preset=preset)
        if preset == cnn_plan.GENERAL:  # the general reader: ddddocr's recognizer, the file its package installs
            from solvers.cnn.dddd import onnx_path

            assert files == {"checkpoint": onnx_path(), "cascade": path}
            continue
        assert {"checkpoint", "cascade"} <= set(files)  # one checkpoint (TuringPass's), a fallback or an ensemble
        assert all(p.is_file() and p.parent == cnn_plan.WEIGHTS for p in files.values())
        solver = cnn_solver.CNNSolver(preset=preset)  # all load, and all were trained for this preset
        readers = [solver.first] + ([solver.fallback] if solver.fallback is not None else [])
        assert all(net.lengths for reader in readers for net in reader.nets)
        assert sum(len(reader.nets) for reader in readers) == len(files) - 1
