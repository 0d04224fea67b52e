"""The CNN: training smoke test, determinism, resume, checkpoints and their refusals."""

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
from solvers.cnn.model import CaptchaNet, CNNConfig, decode, preprocess  # noqa: E402
from solvers.cnn.card import model_card  # noqa: E402
from solvers.cnn.data import encode  # noqa: E402
from solvers.cnn.train import TrainConfig, train  # noqa: E402

TINY = {"count": 64, "val_count": 16, "epochs": 1, "batch_size": 32, "eval_every": 1, "workers": 1, "device": "cpu"}


def _train(out: Path, **overrides: object) -> dict:
    return train(TrainConfig(out=out, preset="easy", **{**TINY, **overrides}))  # type: ignore[arg-type]


def test_two_training_steps_write_a_checkpoint_that_loads_and_solves(tmp_path: Path) -> None:
    meta = _train(tmp_path / "m.pt")
    assert [h["step"] for h in meta["history"]] == [1, 2]
    state = cnn_solver.load_checkpoint(tmp_path / "m.pt")
    assert state["preset"] == "easy" and state["charset"] == image_scheme("easy").spec.charset
    assert state["config"]["height"] == 24 and "torch" in state["versions"]
    solver = cnn_solver.CNNSolver(checkpoint=str(tmp_path / "m.pt"), preset="easy")
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


def test_ctc_decode_merges_repeats_and_drops_blanks() -> None:
    charset = "AB"
    steps = [0, 1, 1, 0, 1, 2, 2, 0]  # blank A A blank A B B blank -> "AAB"
    logits = torch.nn.functional.one_hot(torch.tensor([steps]), 3).float()
    assert decode(logits, charset) == ["AAB"]


def test_encode_refuses_characters_outside_the_charset() -> None:
    flat, lengths = encode(["AB", "B"], "AB")
    assert flat.tolist() == [1, 2, 2] and lengths.tolist() == [2, 1]
    with pytest.raises(ValueError, match="outside the charset: C"):
        encode(["AC"], "AB")


def test_model_shapes() -> None:
    config = CNNConfig(charset="ABC")
    x = preprocess([image_scheme("medium").render("ABCD", random.Random(0))] * 2, config)
    assert x.shape == (2, 1, 24, 72) and float(x.max()) <= 1.0
    assert CaptchaNet(config)(x).shape == (2, config.steps, 4)


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


def test_fine_tuning_starts_from_a_checkpoint_of_the_same_config(tmp_path: Path) -> None:
    _train(tmp_path / "a.pt")
    meta = _train(tmp_path / "b.pt", init=tmp_path / "a.pt", seed=1)
    assert meta["init"]["path"] == str(tmp_path / "a.pt") and len(meta["init"]["sha256"]) == 64
    assert "Started from" in model_card(meta, "cmd")
    with pytest.raises(ValueError, match="differs from this run.s .* beyond input size, charset, --strided and --hidden"):
        _train(tmp_path / "c.pt", init=tmp_path / "a.pt", model={"channels": (16, 32, 48, 32)})


def test_a_strided_model_with_another_gru_starts_from_the_convolutions_it_shares(tmp_path: Path) -> None:
    from solvers.cnn.checkpoint import initialise

    _train(tmp_path / "a.pt")  # pooled first stage, GRU 64
    state = cnn_solver.load_checkpoint(tmp_path / "a.pt")
    cheaper = CNNConfig.from_dict({**state["config"], "strided": True, "hidden": 32})
    torch.manual_seed(0)
    model = CaptchaNet(cheaper)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    started = initialise(model, cheaper, tmp_path / "a.pt")
    after = model.state_dict()
    convolutions = [k for k in after if k.startswith("features.")]
    assert convolutions and all(torch.equal(after[k], state["state_dict"][k]) for k in convolutions)
    assert started["fresh"] == sorted(k for k in after if k.startswith(("rnn.", "head.")))  # head.bias too: whole layers
    assert all(torch.equal(after[k], before[k]) for k in started["fresh"])  # left as initialised, not half-loaded
    assert model(torch.rand(2, 1, 24, 72)).shape == (2, cheaper.steps, len(cheaper.charset) + 1)
    meta = _train(tmp_path / "b.pt", init=tmp_path / "a.pt", model={"strided": True, "hidden": 32})
    card = model_card(meta, "cmd")
    assert "started from random weights: `head.bias`, `head.weight`, `rnn.bias_hh_l0`" in card and "'hidden': 64" in card


def test_weights_of_a_smaller_input_start_a_larger_one(tmp_path: Path) -> None:
    from solvers.cnn.checkpoint import initialise

    _train(tmp_path / "a.pt")  # 24 x 72 input
    state = cnn_solver.load_checkpoint(tmp_path / "a.pt")
    larger = CNNConfig.from_dict({**state["config"], "height": 32, "width": 96})
    model = CaptchaNet(larger)
    initialise(model, larger, tmp_path / "a.pt")
    assert all(torch.equal(v, state["state_dict"][k]) for k, v in model.state_dict().items())
    assert model(torch.rand(2, 1, 32, 96)).shape[1] == larger.steps  # reads 24 columns now, not 18
    meta = _train(tmp_path / "b.pt", init=tmp_path / "a.pt", model={"height": 32, "width": 96})
    assert meta["config"]["width"] == 96 and meta["init"]["path"] == str(tmp_path / "a.pt")
    assert "read 72x24 input" in model_card(meta, "cmd")  # the card says the input grew


def test_colour_input_keeps_the_channels_apart() -> None:
    from PIL import Image

    config = CNNConfig(charset="AB", height=8, width=16, colour=True)
    red, blue = Image.new("RGB", (40, 20), (255, 0, 0)), Image.new("RGB", (40, 20), (0, 0, 255))
    x = preprocess([red, blue], config)
    assert x.shape == (2, 3, 8, 16)
    assert float(x[0, 0].min()) == 1.0 and float(x[0, 1:].max()) == 0.0  # red in plane 0 only
    assert float(x[1, 2].min()) == 1.0 and float(x[1, :2].max()) == 0.0
    assert CaptchaNet(config)(x).shape == (2, config.steps, 3)
    assert CNNConfig.from_dict({"charset": "AB", "height": 24, "width": 72, "channels": [16, 32, 48, 64],
                                "hidden": 64}).colour is False  # checkpoints from before the option load as grey


@pytest.mark.parametrize("strided", [False, True])
def test_the_inference_copy_computes_what_the_trained_model_computes(strided: bool) -> None:
    from solvers.cnn.model import for_inference

    torch.manual_seed(0)
    model = CaptchaNet(CNNConfig(charset="ABCDEFGH", channels=(8, 12, 16, 20), hidden=16, strided=strided))
    for module in model.modules():  # trained-looking BatchNorm statistics, not the identity it starts as
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 2.0)
            module.bias.data.normal_()
    model.eval()
    fast = for_inference(model)
    kinds = [type(m).__name__ for m in fast.features]
    assert "BatchNorm2d" not in kinds and "Identity" not in kinds
    pooled = ["Conv2d", "PairwiseMax", "ReLU"]  # pooling moved before ReLU: a quarter of the values to clip
    assert kinds == ["Conv2d", "ReLU"] * strided + pooled * (3 - strided) + ["Conv2d", "MaxPool2d", "ReLU"]
    x = torch.rand(5, 1, 24, 72)
    with torch.inference_mode():
        want = model(x)
        got = fast(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(want, got, atol=1e-4), (want - got).abs().max()
    assert decode(got, "ABCDEFGH") == decode(want, "ABCDEFGH")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is untouched


def test_chunks_read_side_by_side_give_the_answers_one_core_gives_in_order(tmp_path: Path) -> None:
    _train(tmp_path / "m.pt")
    scheme = image_scheme("easy")
    challenges = [Challenge(str(i), scheme.render(scheme.sample_answer(random.Random(i)), random.Random(i))) for i in range(11)]
    together = cnn_solver.CNNSolver(checkpoint=str(tmp_path / "m.pt"), batch_size=3)
    alone = cnn_solver.CNNSolver(checkpoint=str(tmp_path / "m.pt"), batch_size=3, parallel=False)
    assert alone.pool is None and (together.pool is not None or len(os.sched_getaffinity(0)) == 1)
    assert together.solve(challenges) == alone.solve(challenges)  # 4 chunks, the last one short
    assert [together.solve([c])[0] for c in challenges] == alone.solve(challenges)  # batch 1: one chunk


def test_read_out_gives_each_answer_the_peak_probability_of_its_weakest_character() -> None:
    from solvers.cnn.model import read_out

    p = torch.tensor([[[0.1, 0.9, 0.0], [0.3, 0.6, 0.1], [0.8, 0.1, 0.1], [0.3, 0.0, 0.7]],  # A A blank B
                      [[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05]]])  # blanks
    answers, sure = read_out(p.log(), "AB")
    assert answers == ["AB", ""]
    assert sure[0] == pytest.approx(0.7) and sure[1] == 0.0  # A peaks at 0.9, B at 0.7; nothing read: not sure


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


@pytest.mark.parametrize("kernel", [(2, 2), (2, 1), (3, 1)])
def test_pairwise_max_pools_as_max_pool2d_does_on_either_layout_and_odd_sizes(kernel: tuple[int, int]) -> None:
    from solvers.cnn.model import PairwiseMax

    pool = torch.nn.MaxPool2d(kernel)
    pairwise = PairwiseMax.of(pool)
    assert (pairwise is None) == (kernel == (3, 1))  # other windows stay as they were
    if pairwise is None:
        return
    for h, w in ((8, 12), (7, 9), (5, 40)):
        x = torch.randn(3, 4, h, w)
        for layout in (torch.contiguous_format, torch.channels_last):
            assert torch.equal(pairwise(x.contiguous(memory_format=layout)), pool(x))


@pytest.mark.parametrize("config", [
    CNNConfig(charset="ABCDEFGH", channels=(8, 12, 16, 20), hidden=16),
    CNNConfig(charset="ABCDEFGH", channels=(8, 12, 16, 20), hidden=16, strided=True),
    CNNConfig(charset="ABC", height=40, width=96, channels=(8, 12, 16, 20), hidden=12, colour=True),
], ids=["grey", "strided", "colour"])
def test_onnx_runtime_computes_what_pytorch_computes(config: CNNConfig) -> None:
    from solvers.cnn import runtime
    from solvers.cnn.model import for_inference

    if not runtime.available():
        pytest.skip("onnx or onnxruntime is not installed")
    torch.manual_seed(1)
    model = CaptchaNet(config)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
    fast = for_inference(model.eval())
    session = runtime.Session(fast)
    for batch in (1, 5):
        x = torch.rand(batch, config.planes, config.height, config.width)
        with torch.inference_mode():
            want = fast(x.contiguous(memory_format=torch.channels_last))
        got = session(x)
        assert got.shape == want.shape and torch.allclose(want, got, atol=1e-4), (want - got).abs().max()
        assert decode(got, config.charset) == decode(want, config.charset)


def test_the_engine_option_is_checked_and_auto_picks_onnx_runtime_on_the_cpu(tmp_path: Path) -> None:
    from solvers.cnn import runtime

    _train(tmp_path / "m.pt")
    path = str(tmp_path / "m.pt")
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


def test_fit_length_finds_the_most_probable_path_of_an_allowed_length_as_brute_force_does() -> None:
    import itertools

    import numpy as np

    from solvers.cnn.model import _collapse, fit_length

    rng = np.random.default_rng(0)
    for _ in range(150):
        steps, classes = int(rng.integers(1, 6)), int(rng.integers(2, 5))
        logp = np.log(rng.dirichlet(np.ones(classes), size=steps))
        shortest = int(rng.integers(0, 4))
        longest = shortest + int(rng.integers(0, 3))
        scored = [(sum(logp[t, k] for t, k in enumerate(p)), p) for p in itertools.product(range(classes), repeat=steps)
                  if shortest <= len(_collapse(list(p), [1.0] * steps, "ABCD")[0]) <= longest]
        (got,) = fit_length(logp[None], shortest, longest)
        if not scored:
            assert got is None
            continue
        assert got is not None and shortest <= len(_collapse(got, [1.0] * steps, "ABCD")[0]) <= longest
        assert sum(logp[t, k] for t, k in enumerate(got)) == pytest.approx(max(s for s, _ in scored), abs=1e-9)
    many = np.log(rng.dirichlet(np.ones(4), size=(12, 6)))  # items at once: each as if alone
    assert fit_length(many, 2, 3) == [fit_length(one[None], 2, 3)[0] for one in many]


def test_read_out_keeps_answers_to_the_trained_lengths() -> None:
    from solvers.cnn.model import read_out

    # columns: A, blank, A (weakly), blank: greedy reads "A" unless the second A wins; 2 characters are asked
    p = torch.tensor([[[0.1, 0.9, 0.0], [0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.9, 0.05, 0.05]]])
    assert read_out(p.log(), "AB") == (["A"], [pytest.approx(0.9)])
    answers, sure = read_out(p.log(), "AB", lengths=(2, 3))
    assert answers == ["AA"] and sure[0] == pytest.approx(0.4)  # the weak second A is now its weakest character
    assert read_out(p.log(), "AB", lengths=(1, 1))[0] == ["A"]  # already allowed: the greedy answer stands
    assert read_out(p.log(), "AB", lengths=(5, 6))[0] == ["A"]  # nothing that long fits in 4 columns: greedy


def test_train_records_answer_lengths_and_older_weights_get_them_from_their_data(tmp_path: Path) -> None:
    from captchas.generate import make_dataset
    from solvers.cnn.checkpoint import record_lengths

    meta = _train(tmp_path / "p.pt")
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


def test_views_are_checked_and_reading_one_view_is_reading_the_image(tmp_path: Path) -> None:
    _train(tmp_path / "m.pt")
    path = str(tmp_path / "m.pt")
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


@pytest.mark.parametrize(("args", "message"), [
    (["--preset", "brutal"], "unknown preset 'brutal'"),
    (["--channels", "8,x,16"], "--channels '8,x,16': give three or more comma-separated counts"),
    (["--channels", "8,16"], "--channels '8,16': give three or more comma-separated counts"),
    (["--height", "8"], "--height must be 16-256"),
    (["--hidden", "0"], "--hidden must be 1-2048"),
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
    assert result.exit_code == (2 if "Invalid value" in message else 1) and "Traceback" not in result.output
    assert message in result.output, result.output
    assert not (tmp_path / "m.pt").exists()


def test_a_model_that_writes_more_characters_decodes_with_the_data_sets_only(tmp_path: Path) -> None:
    assert cnn_solver.barred("AB12", "A1", folded=False) == (2, 4)
    assert cnn_solver.barred("ab12", "AB1", folded=True) == (4,)  # compared folded
    assert cnn_solver.barred("AB12", "", folded=False) == ()  # no charset declared: nothing barred
    _train(tmp_path / "m.pt")  # easy's charset: 2-9 and A-Z without I, O
    scheme = image_scheme("easy")
    images = [Challenge(str(i), scheme.render("AB3D", random.Random(i))) for i in range(8)]
    free = cnn_solver.CNNSolver(checkpoint=str(tmp_path / "m.pt"), engine="torch").solve(images)
    kept = cnn_solver.CNNSolver(checkpoint=str(tmp_path / "m.pt"), charset="AB", engine="torch").solve(images)
    assert set("".join(kept)) <= set("AB") and set("".join(free)) - set("AB")  # two steps write noise: the mask shows


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
