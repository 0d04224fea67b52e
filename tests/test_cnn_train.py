"""The CNN's training: steps, determinism and resume, data set folders, a mixed-in set, augmentation, where a run starts, answer lengths, the budget, refusals."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed")

from captchas.dataset import Challenge  # noqa: E402
from captchas.schemes import image_scheme  # noqa: E402
from solvers.cnn import solver as cnn_solver  # noqa: E402
from solvers.cnn.model import CaptchaNet, CNNConfig, preprocess  # noqa: E402
from solvers.cnn.card import model_card  # noqa: E402
from solvers.cnn.train import TrainConfig, train  # noqa: E402

from tests.tiny import TINY, Tiny, train_tiny as _train  # noqa: E402


def test_two_training_steps_write_a_checkpoint_that_loads_and_solves(tiny_checkpoint: Tiny) -> None:
    path, meta = tiny_checkpoint
    assert [h["step"] for h in meta["history"]] == [1, 2]
    state = cnn_solver.load_checkpoint(path)
    assert state["preset"] == "easy" and state["charset"] == image_scheme("easy").spec.charset
    assert state["config"]["height"] == 24 and "torch" in state["versions"]
    solver = cnn_solver.CNNSolver(checkpoint=str(path), preset="easy")
    scheme = image_scheme("easy")
    images = [scheme.render("AB3D", random.Random(i)) for i in range(3)]
    answers = solver.solve([Challenge(str(i), im) for i, im in enumerate(images)])
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)


def test_training_is_deterministic_on_cpu_and_resumes_exactly(tmp_path: Path) -> None:
    _train(tmp_path / "a.pt", epochs=2)
    _train(tmp_path / "b.pt", epochs=2)
    a = torch.load(tmp_path / "a.pt.last", weights_only=True)["model"]
    b = torch.load(tmp_path / "b.pt.last", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)

    def stop_at_two(p: object) -> None:
        if getattr(p, "phase") == "train" and getattr(p, "done") == 2:
            raise KeyboardInterrupt

    config = TrainConfig(out=tmp_path / "c.pt", preset="easy", **{**TINY, "epochs": 2})  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=stop_at_two)
    train(config, resume=True)
    c = torch.load(tmp_path / "c.pt.last", weights_only=True)
    assert c["step"] == 4 and all(torch.equal(a[k], c["model"][k]) for k in a)


def test_training_from_a_data_set_folder(tmp_path: Path) -> None:
    from captchas.generate import make_dataset

    data = make_dataset(image_scheme("easy"), 40, 5, tmp_path / "set")
    meta = train(TrainConfig(out=tmp_path / "f.pt", preset=None, dataset=data.path, epochs=1, batch_size=16,
                             eval_every=1, device="cpu"))
    assert meta["data"]["sha256"] == data.hash and meta["data"]["val_items"] == 4
    assert meta["charset"] == "".join(sorted(data.info["charset"]))


def test_a_second_data_set_mixed_into_every_batch_is_recorded_and_resumes_exactly(tmp_path: Path) -> None:
    from captchas.generate import make_dataset

    real = make_dataset(image_scheme("easy"), 40, 5, tmp_path / "real").path
    extra = make_dataset(image_scheme("easy"), 30, 6, tmp_path / "extra").path
    base = {"preset": None, "dataset": real, "epochs": 1, "batch_size": 8, "eval_every": 1, "device": "cpu"}
    plain = train(TrainConfig(out=tmp_path / "p.pt", **base))  # type: ignore[arg-type]
    mixed = TrainConfig(out=tmp_path / "m.pt", mix=extra, mix_share=0.5, mix_count=20, **base)  # type: ignore[arg-type]
    meta = train(mixed)
    assert meta["mix"] == {"dataset": str(extra), "sha256": meta["mix"]["sha256"], "items": 20, "share": 0.5, "per_batch": 8}
    assert meta["data"]["sha256"] == plain["data"]["sha256"] and meta["data"]["train_items"] == 36  # same real items
    assert "Every batch also held 8 items drawn from" in model_card(meta, "cmd")
    p = torch.load(tmp_path / "p.pt.last", weights_only=True)
    m = torch.load(tmp_path / "m.pt.last", weights_only=True)
    assert p["step"] == m["step"] == 5 and not all(torch.equal(p["model"][k], m["model"][k]) for k in p["model"])

    def stop_at_two(progress: object) -> None:
        if getattr(progress, "phase") == "train" and getattr(progress, "done") == 2:
            raise KeyboardInterrupt

    again = TrainConfig(out=tmp_path / "r.pt", mix=extra, mix_share=0.5, mix_count=20, **base)  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        train(again, progress=stop_at_two)
    train(again, resume=True)
    r = torch.load(tmp_path / "r.pt.last", weights_only=True)
    assert r["step"] == 5 and all(torch.equal(m["model"][k], r["model"][k]) for k in m["model"])

    with pytest.raises(ValueError, match="give --dataset too"):
        train(TrainConfig(out=tmp_path / "x.pt", preset="easy", mix=extra, **{**TINY}))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="--mix-share is the share"):
        train(TrainConfig(out=tmp_path / "x.pt", mix=extra, mix_share=1.0, **base))  # type: ignore[arg-type]
    wider = make_dataset(image_scheme("easy", charset="abc"), 10, 7, tmp_path / "wider").path  # letters easy lacks
    with pytest.raises(ValueError, match="which --dataset's charset lacks"):
        train(TrainConfig(out=tmp_path / "x.pt", mix=wider, **base))  # type: ignore[arg-type]


def test_a_mixed_case_insensitive_set_trains_folded_and_its_weights_read_either_case(tmp_path: Path) -> None:
    """TuringPass-like: both cases in the charset, scored without case: one class per letter."""
    from captchas.folder import import_folder
    from solvers.cnn.data import folds

    assert folds("AaBb12", case_sensitive=False) and not folds("AaBb12", case_sensitive=True)
    assert not folds("ABC123", case_sensitive=False)  # nothing to fold
    scheme = image_scheme("easy")
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        answer = "".join(random.Random(i).choice("AaBb") for _ in range(4)) + f"_{i}"
        scheme.render(answer.split("_")[0].upper(), random.Random(i)).save(src / f"{answer}.png")
    data = import_folder(src, tmp_path / "set", pattern=r"(.+)_\d+").dataset
    assert set(data.info["charset"]) == set("AaBb")
    meta = train(TrainConfig(out=tmp_path / "f.pt", preset=None, dataset=data.path, epochs=1, batch_size=8,
                             eval_every=1, device="cpu"))
    assert meta["folded"] and meta["charset"] == "ab" and meta["train"]["augment"] is None
    card = model_card(meta, "cmd")
    assert "case-folded" in card and "Augmentation" in card  # on by default for a data set folder
    cnn_solver.CNNSolver(checkpoint=str(tmp_path / "f.pt"), charset="AaBb")  # either case is fine
    with pytest.raises(ValueError, match="cannot write 'c'"):
        cnn_solver.CNNSolver(checkpoint=str(tmp_path / "f.pt"), charset="AaBbC")


def test_augmentation_is_seeded_and_keeps_shape_and_range() -> None:
    from solvers.cnn.data import augment

    x = torch.rand(6, 1, 24, 72)
    a = augment(x, torch.Generator().manual_seed(3))
    b = augment(x, torch.Generator().manual_seed(3))
    c = augment(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


def test_fine_tuning_starts_from_a_checkpoint_of_the_same_config(tmp_path: Path, tiny_checkpoint: Tiny) -> None:
    start = tiny_checkpoint[0]
    meta = _train(tmp_path / "b.pt", init=start, seed=1)
    assert meta["init"]["path"] == str(start) and len(meta["init"]["sha256"]) == 64
    assert "Started from" in model_card(meta, "cmd")
    with pytest.raises(ValueError, match="differs from this run.s .* beyond input size, charset, strided and hidden"):
        _train(tmp_path / "c.pt", init=start, model={"channels": (16, 32, 48, 32)})


def test_a_strided_model_with_another_gru_starts_from_the_convolutions_it_shares(tmp_path: Path, tiny_checkpoint: Tiny) -> None:
    from solvers.cnn.checkpoint import initialise

    start = tiny_checkpoint[0]  # pooled first stage, GRU 64
    state = cnn_solver.load_checkpoint(start)
    cheaper = CNNConfig.from_dict({**state["config"], "strided": True, "hidden": 32})
    torch.manual_seed(0)
    model = CaptchaNet(cheaper)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    started = initialise(model, cheaper, start)
    after = model.state_dict()
    convolutions = [k for k in after if k.startswith("features.")]
    assert convolutions and all(torch.equal(after[k], state["state_dict"][k]) for k in convolutions)
    assert started["fresh"] == sorted(k for k in after if k.startswith(("rnn.", "head.")))  # head.bias too: whole layers
    assert all(torch.equal(after[k], before[k]) for k in started["fresh"])  # left as initialised, not half-loaded
    assert model(torch.rand(2, 1, 24, 72)).shape == (2, cheaper.steps, len(cheaper.charset) + 1)
    meta = _train(tmp_path / "b.pt", init=start, model={"strided": True, "hidden": 32})
    card = model_card(meta, "cmd")
    assert "started from random weights: `head.bias`, `head.weight`, `rnn.bias_hh_l0`" in card and "'hidden': 64" in card


def test_weights_of_a_smaller_input_start_a_larger_one(tmp_path: Path, tiny_checkpoint: Tiny) -> None:
    from solvers.cnn.checkpoint import initialise

    start = tiny_checkpoint[0]  # 24 x 72 input
    state = cnn_solver.load_checkpoint(start)
    larger = CNNConfig.from_dict({**state["config"], "height": 32, "width": 96})
    model = CaptchaNet(larger)
    initialise(model, larger, start)
    assert all(torch.equal(v, state["state_dict"][k]) for k, v in model.state_dict().items())
    assert model(torch.rand(2, 1, 32, 96)).shape[1] == larger.steps  # reads 24 columns now, not 18
    meta = _train(tmp_path / "b.pt", init=start, model={"height": 32, "width": 96})
    assert meta["config"]["width"] == 96 and meta["init"]["path"] == str(start)
    assert "read 72x24 input" in model_card(meta, "cmd")  # the card says the input grew


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here: gpu tests run where one is lent")
def test_training_and_solving_on_cuda(tmp_path: Path) -> None:
    meta = _train(tmp_path / "g.pt", device="cuda")
    assert meta["hardware"].startswith("cuda")
    scheme = image_scheme("easy")
    challenges = [Challenge(str(i), scheme.render(scheme.sample_answer(random.Random(i)), random.Random(i))) for i in range(5)]
    on_gpu = cnn_solver.CNNSolver(checkpoint=str(tmp_path / "g.pt"), device="cuda")
    assert on_gpu.engine == "torch"  # auto: ONNX Runtime is the CPU's engine
    images = [c.image for c in challenges]
    with torch.inference_mode():
        x = preprocess(images, on_gpu.first.config)
        gpu = on_gpu.first.nets[0].model(x.cuda()).cpu()
        cpu = cnn_solver.CNNSolver(checkpoint=str(tmp_path / "g.pt"), engine="torch").first.nets[0].model(x)
    assert torch.allclose(gpu, cpu, atol=1e-3)


def test_train_records_answer_lengths_and_older_weights_get_them_from_their_data(tmp_path: Path, tiny_checkpoint: Tiny) -> None:
    from captchas.generate import make_dataset
    from solvers.cnn.checkpoint import record_lengths

    meta = tiny_checkpoint[1]
    assert meta["lengths"] == list(image_scheme("easy").spec.length) == [4, 4]
    assert "- Answers trained on: 4 characters; the solver keeps its answers to these lengths" in model_card(meta, "cmd")
    data = make_dataset(image_scheme("easy"), 30, 3, tmp_path / "set")
    train(TrainConfig(out=tmp_path / "f.pt", preset=None, dataset=data.path, epochs=0.5, batch_size=16, device="cpu"))
    older = torch.load(tmp_path / "f.pt", weights_only=True)
    del older["lengths"]  # as weights from before train recorded them
    torch.save(older, tmp_path / "f.pt")
    assert cnn_solver.CNNSolver(checkpoint=str(tmp_path / "f.pt")).first.lengths is None
    other = make_dataset(image_scheme("easy"), 30, 4, tmp_path / "other")
    with pytest.raises(ValueError, match="was trained on data"):
        record_lengths(tmp_path / "f.pt", other.path)
    sizes = sorted(len(s.answer) for s in data.samples)
    assert record_lengths(tmp_path / "f.pt", data.path) == (sizes[0], sizes[-1])
    after = torch.load(tmp_path / "f.pt", weights_only=True)
    assert all(torch.equal(after["state_dict"][k], older["state_dict"][k]) for k in older["state_dict"])
    assert cnn_solver.CNNSolver(checkpoint=str(tmp_path / "f.pt")).first.lengths == (sizes[0], sizes[-1])
    assert cnn_solver.CNNSolver(checkpoint=str(tmp_path / "f.pt"), fit_length=False).first.lengths is None
    older["data"]["dataset"] = None  # preset weights from before train recorded lengths: the preset's
    older["preset"] = "hard"
    torch.save(older, tmp_path / "h.pt")
    assert cnn_solver.CNNSolver(checkpoint=str(tmp_path / "h.pt"), any_preset=True).first.lengths == (5, 6)


@pytest.mark.parametrize(("args", "message"), [
    (["--preset", "brutal"], "unknown preset 'brutal'"),
    (["--model", "channels=8,x,16"], "--model channels='8,x,16': give three or more comma-separated counts"),
    (["--model", "channels=8,16"], "--model channels='8,16': give three or more comma-separated counts"),
    (["--model", "height=8"], "--model height must be 16-256"),
    (["--model", "hidden=0"], "--model hidden must be 1-2048"),
    (["--model", "depth=3"], "Invalid value for '--model': 'depth' is not a model setting: give one of height, width"),
    (["--model", "colour=maybe"], "Invalid value for '--model': colour='maybe': give true or false"),
    (["--model", "height=2.5"], "Invalid value for '--model': height='2.5': give a whole number"),
    (["--height", "32"], "--height is now a model setting: give --model height=N"),
    (["--count", "0"], "--count must be at least 1, got 0"),
    (["--workers", "0"], "Invalid value for '--workers': 0 is not in the range x>=1"),
    (["--lr", "0"], "--lr must be a finite number above 0, got 0.0"),
    (["--minutes", "nan"], "Invalid value for '--minutes': 'nan' is not a finite number"),
    (["--minutes", "inf"], "Invalid value for '--minutes': 'inf' is not a finite number"),
    (["--epochs", "-inf"], "Invalid value for '--epochs': '-inf' is not a finite number"),
])
def test_train_refuses_bad_settings_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    from click.testing import CliRunner

    from bench.cli import cli

    result = CliRunner().invoke(cli, ["train", "--out", str(tmp_path / "m.pt"), *args])
    usage = "Invalid value" in message or "now a model setting" in message
    assert result.exit_code == (2 if usage else 1) and "Traceback" not in result.output
    assert message in result.output, result.output
    assert not (tmp_path / "m.pt").exists()


def test_minutes_fit_the_rendered_count_or_refuse_before_rendering(tmp_path: Path) -> None:
    from solvers.cnn.data import COUNT, FEWEST, fit_count

    base = dict(out=tmp_path / "m.pt", preset="medium", workers=1)
    assert fit_count(TrainConfig(**base)) == COUNT  # type: ignore[arg-type]
    assert fit_count(TrainConfig(count=500, **base)) == 500  # type: ignore[arg-type]
    assert fit_count(TrainConfig(minutes=1, **base), resumed=1234) == 1234  # type: ignore[arg-type]
    fitted = fit_count(TrainConfig(minutes=1, **base))  # type: ignore[arg-type]
    assert FEWEST <= fitted < COUNT  # a third of a minute renders far fewer than 60,000 on any machine
    with pytest.raises(ValueError, match="--count 60,000 takes about .* s to render here .* more than three "
                                         "quarters of --minutes 1"):
        fit_count(TrainConfig(minutes=1, count=60_000, **base))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="--minutes 0.01 leaves time to render about .* give more --minutes"):
        fit_count(TrainConfig(minutes=0.01, **base))  # type: ignore[arg-type]
    assert not (tmp_path / "m.pt").exists()
