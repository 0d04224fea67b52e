"""The general reader: the `mixed` scheme it is trained on, the default weights for sets that name no
preset, reading case-insensitive sets with both cases merged, starting `train --dataset` from it,
and the warnings for weights used on another scheme, image size, or their own training items."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed")

from click.testing import CliRunner  # noqa: E402

from bench.benchmark import run_benchmark, with_dataset_options  # noqa: E402
from bench.cli import cli  # noqa: E402
from bench.run import RunConfig, SolverSpec  # noqa: E402
from captchas import dataset as ds  # noqa: E402
from captchas import schemes  # noqa: E402
from captchas.generate import item_rng  # noqa: E402
from captchas.knobs import SpecError  # noqa: E402
from captchas.mixed import ALL_CHARACTERS, mixed_scheme  # noqa: E402
from solvers.cnn import plan as cnn_plan  # noqa: E402
from solvers.cnn import solver as cnn_solver  # noqa: E402
from solvers.cnn.checkpoint import initialise, load_checkpoint, mismatch  # noqa: E402
from solvers.cnn.model import CaptchaNet, CNNConfig  # noqa: E402
from solvers.cnn.train import TrainConfig, train  # noqa: E402
from tests.test_auto import folder  # noqa: E402

GENERAL = {"height": 32, "width": 128, "channels": (16, 32, 64, 96), "hidden": 96, "fit": "pad", "crop": True}


def test_the_mixed_scheme_is_seeded_varied_and_rebuilds_from_its_knobs() -> None:
    scheme = schemes.load("mixed")
    drawn = []
    for i in range(24):
        rng = item_rng(5, i)
        answer = scheme.sample_answer(rng)
        drawn.append((answer, scheme.render(answer, rng)))
    again = scheme.render(drawn[3][0], (lambda r: (scheme.sample_answer(r), r)[1])(item_rng(5, 3)))
    assert again.tobytes() == drawn[3][1].tobytes()  # the same seed, the same pixels
    assert len({im.size for _, im in drawn}) > 12 and {len(a) for a, _ in drawn} <= set(range(3, 8))
    assert set("".join(a for a, _ in drawn)) <= set(ALL_CHARACTERS) and scheme.case_sensitive
    assert mixed_scheme(**scheme.knobs()) == scheme
    with pytest.raises(SpecError, match="banded=2.0 is out of range"):
        mixed_scheme(banded=2.0)
    with pytest.raises(SpecError, match="scheme mixed has no preset 'hard'"):
        mixed_scheme("hard")


def test_generate_makes_a_mixed_set(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["generate", "--scheme", "mixed", "--count", "6", "--seed", "1",
                                      "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    data = ds.read_dataset(tmp_path / "m")
    assert data.info["scheme"] == "mixed" and data.case_sensitive and len(data.samples) == 6


def test_case_insensitive_sets_read_a_letters_two_cases_as_one() -> None:
    writes = "aAbB1"  # classes: a 1, A 2, b 3, B 4, 1 5
    assert cnn_solver.case_pairs(writes, "AB1") == ((2, 1), (4, 3))  # the set writes capitals: they keep both
    assert cnn_solver.case_pairs(writes, "ab1") == ((1, 2), (3, 4))  # lower case only: lower keeps both
    assert cnn_solver.case_pairs("AB1", "AB1") == ()
    assert cnn_solver.barred(writes, "AB", folded=True) == (5,)  # both cases allowed, the digit barred
    config = CNNConfig(charset=writes, height=16, width=16)
    logits = torch.log(torch.tensor([[[0.1, 0.3, 0.25, 0.2, 0.1, 0.05]]]))  # blank, a, A, b, B, 1
    net = cnn_solver._Net(config, lambda x: logits.clone(), torch.device("cpu"), None, merged=((2, 1), (4, 3)))
    from PIL import Image

    merged = net.logits([Image.new("L", (16, 16), 255)]).exp()[0, 0]
    assert torch.allclose(merged, torch.tensor([0.1, 0.0, 0.55, 0.0, 0.3, 0.05]))  # A = a + A: it now wins


def test_a_set_that_names_no_preset_reads_with_the_general_reader(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert cnn_plan.plan("", "").checkpoint == Path("ddddocr")  # general.cascade.json: ddddocr's recognizer, the word
    assert cnn_plan.plan("", "medium").checkpoint == cnn_plan.WEIGHTS / "medium.pt"
    monkeypatch.setattr(cnn_plan, "WEIGHTS", tmp_path)
    (tmp_path / "general.pt").write_bytes(b"")
    assert cnn_plan.plan("", "").checkpoint == tmp_path / "general.pt"  # no cascade file: the general.pt it names
    (tmp_path / "general.pt").unlink()
    monkeypatch.setattr(cnn_solver, "WEIGHTS", tmp_path)
    with pytest.raises(ValueError, match=r"no general reader shipped \(general.pt\): train it as docs/cnn.md shows"):
        cnn_solver.CNNSolver()


@pytest.fixture(scope="module")
def general(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny stand-in for the shipped general reader: its model options, two steps of `mixed` items."""
    out = tmp_path_factory.mktemp("general") / "weights" / "general.pt"
    train(TrainConfig(out=out, preset=None, scheme="mixed", count=32, val_count=8, epochs=1, batch_size=16,
                      workers=1, device="cpu", model=dict(GENERAL)))
    return out


def test_train_on_a_folder_starts_from_the_general_reader_unless_told_otherwise(
        general: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_checkpoint(general)["data"]["scheme"] == "mixed" and load_checkpoint(general)["charset"] == ALL_CHARACTERS
    monkeypatch.setattr(cnn_plan, "WEIGHTS", general.parent)
    data = folder(tmp_path, "wide", 30, (250, 75))
    tiny = {"preset": None, "dataset": data, "epochs": 1, "batch_size": 16, "device": "cpu"}
    meta = train(TrainConfig(out=tmp_path / "a.pt", **tiny))  # type: ignore[arg-type]
    assert meta["init"]["path"] == str(general) and meta["init"]["fresh"] == []  # every layer, the head row by row
    assert train(TrainConfig(out=tmp_path / "b.pt", from_scratch=True, **tiny))["init"] is None  # type: ignore[arg-type]
    other = train(TrainConfig(out=tmp_path / "c.pt", model={"channels": "8,16,32"}, **tiny))  # type: ignore[arg-type]
    assert other["init"] is None  # other convolutions: the general reader cannot start it
    with pytest.raises(ValueError, match="--from-scratch and --init contradict"):
        train(TrainConfig(out=tmp_path / "d.pt", from_scratch=True, init=general, **tiny))  # type: ignore[arg-type]


def test_a_new_charset_starts_each_class_from_the_one_that_writes_its_character(general: Path) -> None:
    given = load_checkpoint(general)["state_dict"]
    model = CaptchaNet(CNNConfig(charset="7Kq", **{**GENERAL, "width": 96}))
    started = initialise(model, model.config, general)
    for new, old in ((0, 0), (1, 1 + ALL_CHARACTERS.index("7")), (2, 1 + ALL_CHARACTERS.index("K")),
                     (3, 1 + ALL_CHARACTERS.index("q"))):
        assert torch.equal(model.head.weight[new], given["head.weight"][old])
    assert torch.equal(model.rnn.weight_hh_l0, given["rnn.weight_hh_l0"]) and started["fresh"] == []
    folded = CaptchaNet(CNNConfig(charset="k", **GENERAL))
    initialise(folded, folded.config, general, folded=True)  # a folded letter: the mean of both cases
    both = given["head.weight"][[1 + ALL_CHARACTERS.index("K"), 1 + ALL_CHARACTERS.index("k")]].mean(0)
    assert torch.allclose(folded.head.weight[1], both)
    initialise(folded, folded.config, general)  # a case-sensitive set's k: the checkpoint's k
    assert torch.equal(folded.head.weight[1], given["head.weight"][1 + ALL_CHARACTERS.index("k")])


def test_weights_used_on_another_scheme_size_or_their_own_items_are_named() -> None:
    state = {"data": {"sha256": "a" * 64, "scheme": "wheezy", "image": [250, 75], "dataset": "x"}}
    about = {"sha256": "b" * 64, "scheme": "wheezy", "image": [260, 70]}
    assert mismatch("m.pt", state, about) == []  # within a quarter either way: the same shape
    said = mismatch("m.pt", state, {"sha256": "a" * 64, "scheme": "lined", "image": [640, 360]})
    assert len(said) == 3 and "trained on these very items" in said[0]
    assert "scheme 'wheezy', this data set is 'lined'" in said[1] and "250x75 images, these are 640x360" in said[2]
    general = {"data": {"sha256": "c" * 64, "scheme": "mixed", "image": None}}
    assert mismatch("general.pt", general, {"sha256": "b" * 64, "scheme": "lined", "image": [640, 360]}) == []
    older = {"preset": "medium", "data": {"sha256": "d" * 64, "dataset": None}}  # before train recorded scheme and image
    assert mismatch("medium.pt", older, {"scheme": "image", "image": [160, 60]}) == []
    assert "trained on 160x60 images" in mismatch("medium.pt", older, {"scheme": "image", "image": [240, 80]})[0]


def test_a_run_says_so_in_its_summary_when_weights_were_trained_on_other_images(tmp_path: Path) -> None:
    trained_on = folder(tmp_path, "wide", 20, (250, 75))
    train(TrainConfig(out=tmp_path / "m.pt", preset=None, dataset=trained_on, epochs=1, batch_size=16, device="cpu",
                      from_scratch=True))
    banded = ds.read_dataset(folder(tmp_path, "banded", 6, (640, 360), band=(140, 80)))
    spec = SolverSpec("cnn", {"checkpoint": str(tmp_path / "m.pt"), "engine": "torch", "any_preset": True})
    config = with_dataset_options(RunConfig((spec,), throughput_items=0), banded)
    assert config.solvers[0].options["case_sensitive"] is False  # the set's scoring reaches the reader
    result = run_benchmark(banded, config, tmp_path / "run")
    assert "trained on 250x75 images, these are 640x360" in result.summaries[0].notes
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())["solvers_summary"][0]
    assert "250x75" in summary["notes"]
    from bench.summary import to_table

    assert "warning: cnn: checkpoint m.pt was trained on 250x75 images" in to_table(result.summaries)
    same = run_benchmark(ds.read_dataset(trained_on), config, tmp_path / "again")
    assert "trained on these very items" in same.summaries[0].notes


def test_a_notes_hook_that_fails_costs_the_run_nothing_but_says_so() -> None:
    from solvers.base import notes_for

    class Broken:
        @staticmethod
        def notes(about: dict, **options: object) -> list[str]:
            raise KeyError("image")

    class Quiet:
        pass

    assert notes_for(Broken, {}, {}) == ["its notes hook failed (KeyError: 'image')"]
    assert notes_for(Quiet, {}, {}) == []
