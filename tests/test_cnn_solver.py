"""The `cnn` solver: shipped weights on fresh items, chunks, cascades, engines, views, ensembles, the data set's charset."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed")

from captchas.dataset import Challenge  # noqa: E402
from captchas.schemes import image_scheme  # noqa: E402
from solvers.cnn import plan as cnn_plan  # noqa: E402
from solvers.cnn import solver as cnn_solver  # noqa: E402

from tests.tiny import Tiny, train_tiny as _train  # noqa: E402


@pytest.mark.skipif(not cnn_plan.shipped("medium").is_file(), reason="no shipped medium weights")
def test_shipped_medium_weights_read_fresh_items(tmp_path: Path) -> None:
    from captchas.generate import make_dataset
    from captchas.scoring import is_correct

    data = make_dataset(image_scheme("medium"), 200, 31337, tmp_path / "fresh", workers=2)  # a seed never trained on
    solver = cnn_solver.CNNSolver(preset="medium", charset=data.info["charset"])
    from PIL import Image

    images = [Image.open(data.path / s.file) for s in data.samples]
    answers = solver.solve([Challenge(s.id, im) for s, im in zip(data.samples, images)])
    right = sum(is_correct(s.answer, a) for s, a in zip(data.samples, answers))
    assert right / len(answers) >= 0.95


def test_chunks_read_side_by_side_give_the_answers_one_core_gives_in_order(tiny_checkpoint: Tiny) -> None:
    path = tiny_checkpoint[0]
    scheme = image_scheme("easy")
    challenges = [Challenge(str(i), scheme.render(scheme.sample_answer(random.Random(i)), random.Random(i))) for i in range(11)]
    together = cnn_solver.CNNSolver(checkpoint=str(path), batch_size=3)
    alone = cnn_solver.CNNSolver(checkpoint=str(path), batch_size=3, parallel=False)
    assert alone.pool is None and (together.pool is not None or len(os.sched_getaffinity(0)) == 1)
    assert together.solve(challenges) == alone.solve(challenges)  # 4 chunks, the last one short
    assert [together.solve([c])[0] for c in challenges] == alone.solve(challenges)  # batch 1: one chunk


def _two_models(tmp_path: Path) -> tuple[str, str, list[Challenge]]:
    _train(tmp_path / "a.pt", seed=1)
    _train(tmp_path / "b.pt", seed=2)
    scheme = image_scheme("easy")
    challenges = [Challenge(str(i), scheme.render(scheme.sample_answer(random.Random(i)), random.Random(i)))
                  for i in range(9)]
    return str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), challenges


def test_a_cascade_asks_the_fallback_only_below_the_threshold_and_keeps_the_surer_answer(tmp_path: Path) -> None:
    a, b, challenges = _two_models(tmp_path)
    first = cnn_solver.CNNSolver(checkpoint=a, parallel=False)
    second = cnn_solver.CNNSolver(checkpoint=b, parallel=False)
    images = [c.image for c in challenges]
    answers_a, sure_a = first.first.read(images)
    answers_b, sure_b = second.first.read(images)
    never = cnn_solver.CNNSolver(checkpoint=a, fallback=b, threshold=0.0)
    assert never.solve(challenges) == answers_a
    always = cnn_solver.CNNSolver(checkpoint=a, fallback=b, threshold=1.0)
    surer = [y if sy >= sx else x for x, sx, y, sy in zip(answers_a, sure_a, answers_b, sure_b)]
    assert always.solve(challenges) == surer
    reverse = cnn_solver.CNNSolver(checkpoint=b, fallback=a, threshold=1.0)  # now the first reading is the surer
    assert reverse.solve(challenges) == [x if sx >= sy else y for x, sx, y, sy in zip(answers_a, sure_a, answers_b, sure_b)]
    assert answers_a != answers_b  # so that which one the cascade keeps shows
    middle = sorted(sure_a)[4]  # about half the items fall back
    some = cnn_solver.CNNSolver(checkpoint=a, fallback=b, threshold=middle)
    want = [s if sx < middle else x for x, sx, s in zip(answers_a, sure_a, surer)]
    assert some.solve(challenges) == want
    assert [some.solve([c])[0] for c in challenges] == want  # batch 1 takes the same path


def test_cascade_options_that_make_no_sense_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="give -o fallback=PATH too"):
        cnn_plan.plan(checkpoint="a.pt", threshold=0.5)
    with pytest.raises(ValueError, match="a fallback needs -o threshold=T"):
        cnn_plan.plan(checkpoint="a.pt", fallback="b.pt")
    for bad in (1.5, -0.1, "high", True):
        with pytest.raises(ValueError, match="threshold is a confidence between 0 and 1"):
            cnn_plan.plan(checkpoint="a.pt", fallback="b.pt", threshold=bad)  # type: ignore[arg-type]
    monkeypatch.setattr(cnn_plan, "WEIGHTS", tmp_path)
    monkeypatch.setattr(cnn_solver, "WEIGHTS", tmp_path)
    (tmp_path / "hard.cascade.json").write_text('{"checkpoint": "f.pt", "fallback": "s.pt", "threshold": 0.85}')
    chosen = cnn_plan.plan(preset="hard")
    assert (chosen.checkpoint, chosen.fallback, chosen.threshold) == (tmp_path / "f.pt", tmp_path / "s.pt", 0.85)
    assert cnn_plan.plan(preset="hard", threshold=0.5).threshold == 0.5  # the shipped pair, another threshold
    assert cnn_plan.plan(preset="hard", checkpoint="mine.pt").fallback is None  # own weights: no cascade
    (tmp_path / "hard.cascade.json").write_text('{"checkpoint": "f.pt", "threshold": 2}')
    with pytest.raises(ValueError, match="needs a \"checkpoint\" file name"):
        cnn_plan.plan(preset="hard")
    assert cnn_solver.CNNSolver.files(preset="hard") == {}  # provenance leaves it to the solver to say why
    (tmp_path / "hard.cascade.json").write_bytes(b"\xff{")
    with pytest.raises(ValueError, match="is not readable JSON"):
        cnn_solver.CNNSolver(preset="hard")


def test_the_engine_option_is_checked_and_auto_picks_onnx_runtime_on_the_cpu(tiny_checkpoint: Tiny) -> None:
    from solvers.cnn import runtime

    path = str(tiny_checkpoint[0])
    with pytest.raises(ValueError, match="engine 'tensorrt' is not one of auto, torch, onnxruntime"):
        cnn_solver.CNNSolver(checkpoint=path, engine="tensorrt")
    with pytest.raises(ValueError, match="engine onnxruntime runs on the CPU here"):
        cnn_solver.CNNSolver(checkpoint=path, engine="onnxruntime", device="cuda")
    assert cnn_solver.CNNSolver(checkpoint=path, engine="torch").engine == "torch"
    auto = cnn_solver.CNNSolver(checkpoint=path)
    assert auto.engine == ("onnxruntime" if runtime.available() else "torch")
    scheme = image_scheme("easy")
    challenges = [Challenge(str(i), scheme.render(scheme.sample_answer(random.Random(i)), random.Random(i))) for i in range(7)]
    assert auto.solve(challenges) == cnn_solver.CNNSolver(checkpoint=path, engine="torch").solve(challenges)


@pytest.mark.skipif(not cnn_plan.shipped_cascade("hard").is_file(), reason="no shipped hard cascade")
def test_the_shipped_hard_cascade_reads_fresh_items_and_a_run_records_its_three_files(tmp_path: Path) -> None:
    from PIL import Image

    from bench import benchmark, provenance
    from bench.run import RunConfig, SolverSpec
    from captchas.scoring import is_correct
    from captchas.dataset import sha256_bytes
    from captchas.generate import make_dataset

    data = make_dataset(image_scheme("hard"), 200, 31337, tmp_path / "fresh", workers=2, preset="hard")
    solver = cnn_solver.CNNSolver(preset="hard", charset=data.info["charset"])
    assert solver.fallback is not None and 0.0 < solver.threshold < 1.0
    images = [Image.open(data.path / s.file) for s in data.samples]
    answers = solver.solve([Challenge(s.id, im) for s, im in zip(data.samples, images)])
    assert sum(is_correct(s.answer, a) for s, a in zip(data.samples, answers)) / len(answers) >= 0.95
    config = benchmark.with_dataset_options(RunConfig((SolverSpec("cnn"),)), data)
    weights = cnn_plan.WEIGHTS
    assert provenance.provenance(data, config, {}, {}, [])["solver_files"]["cnn"] == {
        "checkpoint": sha256_bytes((weights / "hard-fast.pt").read_bytes()),
        "fallback": sha256_bytes((weights / "hard.pt").read_bytes()),
        "cascade": sha256_bytes((weights / "hard.cascade.json").read_bytes()),
    }


def test_views_move_and_scale_the_image_and_the_readings_vote() -> None:
    from PIL import Image, ImageChops

    from solvers.cnn.views import VIEWS, view, vote

    image = Image.new("RGB", (40, 20), (250, 250, 250))
    image.paste((0, 0, 0), (18, 8, 22, 12))  # a dark square in the middle
    assert view(image, 0) is image
    for k in range(1, len(VIEWS)):
        moved = view(image, k)
        assert moved.size == image.size and ImageChops.difference(moved, image).getbbox() is not None
    left, right, up = (view(image, k).convert("L").point(lambda v: 255 if v < 128 else 0).getbbox() for k in (1, 2, 3))
    assert (left[0], right[0], up[1]) == (16, 20, 6)  # 2 pixels left, right, up
    assert vote(["AB", "AC", "AB"], [0.5, 0.9, 0.6]) == ("AB", 0.6)  # the most frequent; its surest reading
    assert vote(["AB", "AC"], [0.5, 0.9]) == ("AC", 0.9)  # a tie goes to the surer


def test_views_are_checked_and_reading_one_view_is_reading_the_image(tiny_checkpoint: Tiny) -> None:
    path = str(tiny_checkpoint[0])
    for bad in (0, 7, 2.5, True):
        with pytest.raises(ValueError, match="views is how many test-time views to read, 1 to 6"):
            cnn_solver.CNNSolver(checkpoint=path, views=bad)  # type: ignore[arg-type]
    scheme = image_scheme("easy")
    challenges = [Challenge(str(i), scheme.render(scheme.sample_answer(random.Random(i)), random.Random(i))) for i in range(5)]
    plain = cnn_solver.CNNSolver(checkpoint=path)
    assert plain.first.views == 1 and cnn_solver.CNNSolver(checkpoint=path, views=1).solve(challenges) == plain.solve(challenges)
    answers, sure = cnn_solver.CNNSolver(checkpoint=path, views=3).first.read([c.image for c in challenges])
    from solvers.cnn.views import view, vote

    each = [plain.first.read([view(c.image, k) for k in range(3)]) for c in challenges]
    assert answers == [vote(*e)[0] for e in each]  # one batch of 15 views, or 3 at a time: the same votes
    assert sure == pytest.approx([vote(*e)[1] for e in each], abs=1e-5)


def test_an_ensemble_pools_its_readings_in_one_vote_or_averages_its_probabilities(tmp_path: Path) -> None:
    from solvers.cnn.model import read_out
    from solvers.cnn.views import view, vote

    a, b, challenges = _two_models(tmp_path)
    images = [c.image for c in challenges]
    one, other = (cnn_solver.CNNSolver(checkpoint=path, parallel=False).first.nets[0] for path in (a, b))
    seen = [view(image, k) for image in images for k in range(3)]
    ra, rb = (read_out(net.logits(seen), net.config.charset, net.lengths) for net in (one, other))
    pooled = [vote(ra[0][i : i + 3] + rb[0][i : i + 3], ra[1][i : i + 3] + rb[1][i : i + 3])[0] for i in range(0, len(seen), 3)]
    both = cnn_solver.CNNSolver(checkpoint=f"{a},{b}", views=3)
    assert both.solve(challenges) == pooled and len(both.first.nets) == 2  # six readings an image, one vote
    assert [both.solve([c])[0] for c in challenges] == pooled  # batch 1 takes the same path
    assert set(cnn_solver.CNNSolver.files(checkpoint=f"{a},{b}")) == {"checkpoint", "checkpoint2"}

    mean = (one.logits(seen).softmax(-1) + other.logits(seen).softmax(-1)) / 2
    mean = mean.view(len(images), 3, *mean.shape[1:]).mean(1)  # over both checkpoints and the three views
    averaged = cnn_solver.CNNSolver(checkpoint=f"{a},{b}", views=3, merge="mean")
    assert averaged.solve(challenges) == read_out(mean.log(), one.config.charset, one.lengths)[0]
    with pytest.raises(ValueError, match="merge is how an image's readings become one answer, one of vote, mean"):
        cnn_solver.CNNSolver(checkpoint=a, merge="median")
    with pytest.raises(ValueError, match="names an empty file"):
        cnn_plan.plan(checkpoint=f"{a},")

    _train(tmp_path / "wide.pt", model={"width": 96})
    mixed = cnn_solver.CNNSolver(checkpoint=f"{a},{tmp_path / 'wide.pt'}", parallel=False)  # votes need no common columns
    wide = mixed.first.nets[1]
    rw = read_out(wide.logits(images), wide.config.charset, wide.lengths)  # its own input: 96 wide, not 72
    ra1 = read_out(one.logits(images), one.config.charset, one.lengths)
    assert mixed.solve(challenges) == [vote([x, y], [sx, sy])[0] for x, sx, y, sy in zip(*ra1, *rw)]
    with pytest.raises(ValueError, match="must write the same charset from inputs of the same width"):
        cnn_solver.CNNSolver(checkpoint=f"{a},{tmp_path / 'wide.pt'}", merge="mean")


def test_a_shipped_reading_may_name_an_ensemble_without_a_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cnn_plan, "WEIGHTS", tmp_path)
    monkeypatch.setattr(cnn_solver, "WEIGHTS", tmp_path)
    (tmp_path / "hard.cascade.json").write_text('{"checkpoint": ["a.pt", "b.pt"], "views": 6, "merge": "mean"}')
    chosen = cnn_plan.plan(preset="hard")
    assert (chosen.checkpoint, chosen.also, chosen.fallback, chosen.views, chosen.merge) == (
        tmp_path / "a.pt", (tmp_path / "b.pt",), None, 6, "mean")
    assert cnn_plan.plan(preset="hard", merge="vote").merge == "vote"
    with pytest.raises(ValueError, match="reads without a fallback: drop threshold"):
        cnn_plan.plan(preset="hard", threshold=0.5)
    assert set(cnn_solver.CNNSolver.files(preset="hard")) == {"checkpoint", "checkpoint2", "cascade"}
    for bad in ('{"checkpoint": []}', '{"checkpoint": ["a.pt", 3]}', '{"checkpoint": "a.pt", "threshold": 0.5}',
                '{"checkpoint": "a.pt", "merge": "max"}'):
        (tmp_path / "hard.cascade.json").write_text(bad)
        with pytest.raises(ValueError, match="needs a \"checkpoint\" file name"):
            cnn_plan.plan(preset="hard")


def test_a_model_that_writes_more_characters_decodes_with_the_data_sets_only(tiny_checkpoint: Tiny) -> None:
    assert cnn_solver.barred("AB12", "A1", folded=False) == (2, 4)
    assert cnn_solver.barred("ab12", "AB1", folded=True) == (4,)  # compared folded
    assert cnn_solver.barred("AB12", "", folded=False) == ()  # no charset declared: nothing barred
    path = tiny_checkpoint[0]  # easy's charset: 2-9 and A-Z without I, O
    scheme = image_scheme("easy")
    images = [Challenge(str(i), scheme.render("AB3D", random.Random(i))) for i in range(8)]
    free = cnn_solver.CNNSolver(checkpoint=str(path), engine="torch").solve(images)
    kept = cnn_solver.CNNSolver(checkpoint=str(path), charset="AB", engine="torch").solve(images)
    assert set("".join(kept)) <= set("AB") and set("".join(free)) - set("AB")  # two steps write noise: the mask shows
