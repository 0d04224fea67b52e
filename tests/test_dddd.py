"""`--init ddddocr`: ddddocr's recognizer as our module, read as ddddocr reads, trained, exported, checked."""

from __future__ import annotations

import contextlib
import io
import random
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed")
ddddocr = pytest.importorskip("ddddocr", reason="ddddocr is not installed")
pytest.importorskip("onnx", reason="onnx is not installed")

from captchas import dataset as ds  # noqa: E402
from captchas.images import load_image, load_images  # noqa: E402
from captchas.dataset import Challenge  # noqa: E402
from captchas.schemes import image_scheme  # noqa: E402
from captchas.spec import PRESETS  # noqa: E402
from solvers.cnn import checkpoint, dddd, runtime  # noqa: E402
from solvers.cnn.train import TrainConfig, train  # noqa: E402
from solvers.ddddocr import DdddOcrSolver, collapse  # noqa: E402
from tests.test_auto import folder  # noqa: E402

HUMANS = Path(__file__).resolve().parent.parent / "captchas" / "data" / "turingpass" / "humans"


@pytest.fixture(scope="module")
def net() -> dddd.DdddNet:
    return dddd.from_onnx()


@pytest.fixture(scope="module")
def beta() -> object:
    with contextlib.redirect_stdout(io.StringIO()):
        return ddddocr.DdddOcr(show_ad=False, beta=True)


def _images() -> list[object]:
    """Every item of the shipped TuringPass humans split, and 25 fresh items of each preset."""
    images = [image for _, image in load_images(ds.read_dataset(HUMANS))]
    for preset in PRESETS:
        scheme = image_scheme(preset)
        rng = random.Random(preset)
        charset = scheme.spec.charset
        images += [scheme.render("".join(rng.choice(charset) for _ in range(5)), random.Random(k)) for k in range(25)]
    return images


def test_the_untrained_module_reads_every_item_as_ddddocr_does(net: dddd.DdddNet, beta: object) -> None:
    """All 8,210 rows kept, on ddddocr's own preprocessing: the same answer for every image."""
    engine = beta.ocr_engine  # type: ignore[attr-defined]
    classes = dddd.charset()
    by_size: dict[tuple[int, int], list[int]] = {}
    images = _images()
    inputs = []
    for k, image in enumerate(images):
        with contextlib.redirect_stdout(io.StringIO()):
            x = engine._preprocess_image(image.copy(), False)
        inputs.append(torch.from_numpy(x))
        by_size.setdefault(tuple(x.shape), []).append(k)
    ours: dict[int, str] = {}
    with torch.inference_mode():
        for keys in by_size.values():
            for s in range(0, len(keys), 64):
                chunk = keys[s : s + 64]
                logits = net(torch.cat([inputs[k] for k in chunk]))
                for k, path in zip(chunk, logits.argmax(-1).tolist()):
                    ours[k] = collapse(path, classes)
    with contextlib.redirect_stdout(io.StringIO()):
        theirs = [beta.classification(image) for image in images]  # type: ignore[attr-defined]
    assert len(images) == 1398 + 25 * len(PRESETS)
    assert [ours[k] for k in range(len(images))] == theirs


def test_a_head_cut_to_the_charset_reads_as_ddddocr_held_to_it(beta: object) -> None:
    charset = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    cut = dddd.keep_rows(dddd.from_onnx(), dddd.head_rows(dddd.charset(), charset, folded=False))
    held = DdddOcrSolver(beta=True, charset=charset, case_sensitive=True, hold="argmax")
    engine = beta.ocr_engine  # type: ignore[attr-defined]
    scheme = image_scheme("medium")
    images = [scheme.render("K7MP2", random.Random(k)) for k in range(12)]
    for image in images:
        with contextlib.redirect_stdout(io.StringIO()):
            x = torch.from_numpy(engine._preprocess_image(image.copy(), False))
        with torch.inference_mode():
            path = cut(x).argmax(-1)[0].tolist()
        assert collapse(path, [""] + list(charset)) == held.read(image)


def test_its_onnx_graph_gives_the_modules_logits(net: dddd.DdddNet) -> None:
    pytest.importorskip("onnxruntime")
    x = torch.rand(2, 1, 64, 120)
    with torch.inference_mode():
        want = net(x)
    got = runtime.Session(net)(x)
    assert got.shape == want.shape == (2, 15, 8210)
    assert torch.allclose(got, want, atol=1e-3)


def test_a_fine_tuned_checkpoint_stores_what_changed_reads_and_refuses_another_ddddocr(tmp_path: Path) -> None:
    data = folder(tmp_path, "small", 24, (160, 60))
    out = tmp_path / "m.pt"
    meta = train(TrainConfig(out=out, preset=None, dataset=data, init=Path("ddddocr"), epochs=2, batch_size=8,
                             eval_every=1, freeze=1.0, device="cpu"))
    state = checkpoint.load_checkpoint(out)
    assert state["config"]["arch"] == "ddddocr" and state["config"]["height"] == 64
    assert state["base"]["sha256"] == dddd.sha256(dddd.onnx_path()) and state["base"]["path"] == "ddddocr/common.onnx"
    assert not any(k.startswith("convs.") for k in state["state_dict"])  # the frozen trunk stays in ddddocr's package
    assert state["state_dict"]["head.weight"].shape[0] == len(state["charset"]) + 1
    assert meta["export"]["differ"] == 0  # the LSTM and head: 4.2 M parameters, 17 MB in float32, so halved ...
    halved = meta["compact"]["dtype"] == "float16"  # ... unless the float16 copy read a validation item otherwise
    assert halved == (meta["compact"]["differ"] == 0) and meta["compact"]["items"] == state["data"]["val_items"]
    assert all(v.dtype == (torch.float16 if halved else torch.float32) for v in state["state_dict"].values())
    assert not halved or out.stat().st_size < checkpoint.SHIPPABLE
    from solvers.cnn.card import model_card
    from solvers.cnn.solver import CNNSolver

    card = model_card(meta, "captcha-bench train --init ddddocr")
    assert "Started from ddddocr 1.6.1's published recognizer, `ddddocr/common.onnx`" in card and "MIT License" in card
    assert f"Stored in {meta['compact']['dtype']}: the float16 copy read" in card
    assert f"ONNX Runtime {meta['export']['runtime']} read {meta['export']['items']} validation items as PyTorch did" in card
    scheme_images = [load_image(ds.read_dataset(data), s) for s in list(ds.read_dataset(data).samples)[:4]]
    answers = CNNSolver(checkpoint=str(out)).solve([Challenge(str(k), im) for k, im in enumerate(scheme_images)])
    assert len(answers) == 4 and all(set(a) <= set(state["charset"]) for a in answers)
    other = {**state, "base": {**state["base"], "sha256": "0" * 64}}
    with pytest.raises(ValueError, match="trained over ddddocr's ddddocr/common.onnx with sha256 000000000000"):
        dddd.load(None, other, "m.pt")
    with pytest.raises(ValueError, match="--init ddddocr fine-tunes ddddocr's model on a --dataset"):
        TrainConfig(out=tmp_path / "p.pt", preset="easy", init=Path("ddddocr")).check()
    with pytest.raises(ValueError, match="drop --model height"):
        TrainConfig(out=tmp_path / "p.pt", preset=None, dataset=data, init=Path("ddddocr"), model={"height": 32}).check()


def test_an_export_that_reads_otherwise_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    read = runtime.Session.__call__

    def wrong(self: runtime.Session, x: torch.Tensor) -> torch.Tensor:
        logits = read(self, x)
        logits[..., 0] += 100.0  # the blank everywhere: answers "" (what ddddocr's users report)
        return logits

    monkeypatch.setattr(runtime.Session, "__call__", wrong)
    cfg = TrainConfig(out=tmp_path / "m.pt", preset="easy", count=64, val_count=16, epochs=1, batch_size=32, workers=1,
                      device="cpu")
    with pytest.raises(ValueError, match=r"its ONNX graph read \d+ of 16 validation items otherwise"):
        train(cfg)
    state = checkpoint.load_checkpoint(tmp_path / "m.pt")
    assert state["export"]["differ"] > 0
    monkeypatch.setattr(runtime.Session, "__call__", read)
    from solvers.cnn.solver import CNNSolver

    with pytest.raises(ValueError, match="read it with -o engine=torch"):
        CNNSolver(checkpoint=str(tmp_path / "m.pt"), preset="easy", engine="onnxruntime")
    CNNSolver(checkpoint=str(tmp_path / "m.pt"), preset="easy", engine="torch")  # PyTorch still reads it


def test_a_heavy_checkpoint_is_halved_only_where_the_half_reads_the_same(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = TrainConfig(out=tmp_path / "m.pt", preset="easy", count=64, val_count=16, epochs=1, batch_size=32, workers=1,
                      device="cpu")
    train(cfg)
    kept = tmp_path / "kept.pt"
    kept.write_bytes(cfg.out.read_bytes())
    state = checkpoint.load_checkpoint(cfg.out)
    config = state["config"]
    x_val = torch.randint(0, 256, (16, 1, config["height"], config["width"]), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))
    assert checkpoint.compact(cfg.out, x_val) == {}  # light enough: left alone
    monkeypatch.setattr(checkpoint, "SHIPPABLE", 0)
    from solvers.cnn import model

    decode = model.decode
    reads: list[int] = []

    def half_reads_otherwise(logits: torch.Tensor, charset: str) -> list[str]:
        reads.append(1)
        return decode(logits, charset) if len(reads) == 1 else ["?"] * len(logits)

    with monkeypatch.context() as patched:
        patched.setattr(model, "decode", half_reads_otherwise)
        assert checkpoint.compact(kept, x_val) == {"items": 16, "differ": 16, "dtype": "float32"}
    refused = checkpoint.load_checkpoint(kept)
    assert refused["compact"]["dtype"] == "float32"
    assert all(v.dtype != torch.float16 for v in refused["state_dict"].values())
    record = checkpoint.compact(cfg.out, x_val)
    assert record == {"items": 16, "differ": 0, "dtype": "float16"}
    halved = checkpoint.load_checkpoint(cfg.out)
    floats = [v for v in halved["state_dict"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats) and halved["compact"] == record
    assert cfg.out.stat().st_size < 0.6 * kept.stat().st_size
    assert checkpoint.network(halved, "m.pt").state_dict()["head.weight"].dtype == torch.float32  # read in float32


def test_the_card_says_up_to_which_step_the_trunk_was_frozen(tmp_path: Path) -> None:
    data = folder(tmp_path, "small", 24, (160, 60))
    meta = train(TrainConfig(out=tmp_path / "m.pt", preset=None, dataset=data, init=Path("ddddocr"), epochs=1,
                             batch_size=4, eval_every=1, freeze=0.5, device="cpu"))
    frozen = [h.get("frozen", False) for h in meta["history"]]
    last = max(h["step"] for h in meta["history"] if h.get("frozen"))
    assert frozen == sorted(frozen, reverse=True) and any(frozen) and not all(frozen)  # frozen, then every layer
    from solvers.cnn.card import model_card

    assert f"The trunk was frozen (its features computed once) to step {last}," in model_card(meta, "cmd")


def test_the_general_reader_is_ddddocrs_recognizer_read_as_ddddocr_reads() -> None:
    pytest.importorskip("onnxruntime")
    from solvers.cnn import plan
    from solvers.cnn.solver import CNNSolver

    assert plan.plan().checkpoint == Path("ddddocr")  # a set that names no preset: general.cascade.json says so
    assert CNNSolver.files()["checkpoint"] == dddd.onnx_path()  # its provenance hashes the file it reads
    humans = ds.read_dataset(HUMANS)
    items = [Challenge(s.id, image) for s, image in load_images(humans, 120)]
    scheme = image_scheme("hard")  # another width: images of two sizes in one batch
    items += [Challenge(f"h{k}", scheme.render("x7Kp2", random.Random(k))) for k in range(8)]
    charset = humans.info["charset"] + "0"
    held = DdddOcrSolver(beta=True, charset=charset, case_sensitive=True).solve(items)
    for engine in ("onnxruntime", "torch"):
        assert CNNSolver(charset=charset, case_sensitive=True, engine=engine).solve(items) == held
    # scored case-insensitively, a letter's two cases are one class (their probabilities added), in the set's case
    folded = CNNSolver(charset=charset.upper(), case_sensitive=False).solve(items)
    assert all(a == a.upper() for a in folded)
    assert sum(a != b.upper() for a, b in zip(folded, held)) <= len(items) // 20
