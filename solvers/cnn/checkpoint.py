"""CNN checkpoints: they carry their own config, charset, preset, data hash, history and versions,
so loading needs nothing else. Saved atomically; loaded with torch.load(weights_only=True).
"""

from __future__ import annotations

import os
import pickle
import platform
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from captchas import dataset as ds
from captchas.output import replacing
from solvers.cnn import CNNError, dddd
from solvers.cnn.data import answer_lengths
from solvers.cnn.model import CaptchaNet, CNNConfig

if TYPE_CHECKING:
    from solvers.cnn.config import TrainConfig

CHECKPOINT_FORMAT = 1
SHIPPABLE = 15_000_000  # bytes: the most a weights file may weigh; a heavier one is stored in float16 where that reads
# the same (compact): a ddddocr-based model's LSTM and head are 17 MB in float32


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's dict; anything but tensors and plain data is refused, with the reason."""
    if not path.is_file():
        raise CNNError(f"checkpoint {path} does not exist: train one with captcha-bench train")
    with path.open("rb") as f:
        head = f.read(4)
    if head != b"PK\x03\x04" and head[:1] != b"\x80":  # torch.save's zip format, or its legacy pickle
        raise CNNError(f"checkpoint {path} is not a readable torch checkpoint (neither zip nor pickle)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CNNError(f"checkpoint {path} holds more than tensors and plain data, refused "
                       "(loaded with weights_only=True)") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise CNNError(f"checkpoint {path} is not a readable torch checkpoint ({e})") from None
    if not isinstance(state, dict) or not {"config", "state_dict", "charset"} <= set(state):
        raise CNNError(f"checkpoint {path} is not a captcha-bench CNN checkpoint (no config, charset, state_dict)")
    return state


def save(cfg: TrainConfig, model: nn.Module, model_cfg: CNNConfig, preset: str | None, case_sensitive: bool,
          folded: bool, data_hash: str, n_train: int, n_val: int, history: list[dict[str, Any]], device: torch.device,
          started_from: dict[str, Any] | None = None, lengths: tuple[int, int] | None = None,
          mixed: dict[str, Any] | None = None, described: dict[str, Any] | None = None,
          tensors: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """Write the checkpoint atomically; return its metadata. `tensors`: what it stores where not the whole
    state_dict (a ddddocr-based model stores the layers that differ from ddddocr's: dddd.changed), with
    `init` naming the base they go on (its sha256 is checked when it loads)."""
    import PIL

    meta = {
        "format": CHECKPOINT_FORMAT,
        "config": model_cfg.to_dict(),
        "charset": model_cfg.charset,
        "preset": preset,
        "case_sensitive": case_sensitive,
        "folded": folded,  # trained on case-folded answers: writes one case, for case-insensitive scoring
        "lengths": list(lengths) if lengths else None,  # shortest and longest answer trained on: the solver writes these
        "data": {"sha256": data_hash, "dataset": str(cfg.dataset) if cfg.dataset else None, "seed": cfg.seed,
                 "train_items": n_train, "val_items": n_val, **(described or {})},
        "train": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "history": history,
        "init": started_from,  # the checkpoint this run started from, if any
        "mix": mixed,  # the second data set mixed into every batch, if any
        "versions": {"torch": str(torch.__version__), "pillow": PIL.__version__, "python": platform.python_version()},
        "hardware": f"{device.type}: {torch.cuda.get_device_name() if device.type == 'cuda' else platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
    }
    state = tensors if tensors is not None else {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if tensors is not None:
        meta["base"] = started_from
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    with replacing(Path(cfg.out)) as tmp:
        torch.save({**meta, "state_dict": state}, tmp)
    return meta


def annotate(path: Path, **fields: Any) -> None:
    """Add `fields` to the checkpoint at `path`, atomically."""
    state = {**torch.load(path, map_location="cpu", weights_only=True), **fields}
    with replacing(path) as tmp:
        torch.save(state, tmp)


def network(state: dict[str, Any], name: str) -> nn.Module:
    """The trained network of a checkpoint's `state` (load_checkpoint), in eval mode."""
    config = CNNConfig.from_dict(state["config"])
    if config.arch == "ddddocr":
        return dddd.load(config, state, name)
    model = CaptchaNet(config)
    model.load_state_dict(state["state_dict"])
    return model.eval()


def check_export(path: Path, x_val: torch.Tensor, count: int = 512) -> dict[str, Any]:
    """Read up to `count` validation items (uint8 pixels) with the checkpoint at `path` in PyTorch and
    through its ONNX graph in ONNX Runtime, as the solver would, and record in the checkpoint how many
    answers differ (`export`). Users of ddddocr's own trainer report models at 93-98 % in training that
    read "" once exported (ddddocr issues #285 and #303): a graph that reads otherwise is caught here,
    and the solver refuses it (`exported`). Nothing is checked where ONNX Runtime is not installed."""
    from solvers.cnn import runtime
    from solvers.cnn.model import for_inference

    if not runtime.available():
        return {}
    state = load_checkpoint(path)
    fast = for_inference(network(state, path.name))
    x = x_val[:count].float().div(255.0).contiguous(memory_format=torch.channels_last)
    theirs, ours = _answers(fast, x, state["charset"]), _answers(runtime.Session(fast), x, state["charset"])
    record = {"items": len(x), "differ": sum(a != b for a, b in zip(theirs, ours)), "runtime": runtime.version()}
    annotate(path, export=record)
    return record


def compact(path: Path, x_val: torch.Tensor, count: int = 512) -> dict[str, Any]:
    """Where the checkpoint at `path` weighs more than SHIPPABLE, store its weights in float16 if that copy
    reads up to `count` validation items (uint8 pixels) exactly as the float32 one does, answer for
    answer; else keep float32. Either way record it (`compact`: items read, answers that differ, the
    dtype kept). Weights load back into float32 layers, so only the rounding differs. Nothing is done,
    and {} returned, for a lighter file."""
    from solvers.cnn.model import for_inference

    if path.stat().st_size <= SHIPPABLE:
        return {}
    state = load_checkpoint(path)
    halved = {**state, "state_dict": {k: v.half() if v.is_floating_point() else v for k, v in state["state_dict"].items()}}
    x = x_val[:count].float().div(255.0).contiguous(memory_format=torch.channels_last)
    read = [_answers(for_inference(network(version, path.name)), x, state["charset"]) for version in (state, halved)]
    differ = sum(a != b for a, b in zip(*read))
    record = {"items": len(x), "differ": differ, "dtype": "float32" if differ else "float16"}
    if differ:
        annotate(path, compact=record)
    else:
        with replacing(path) as tmp:
            torch.save({**halved, "compact": record}, tmp)
    return record


def _answers(model: Any, x: torch.Tensor, charset: str) -> list[str]:
    """Greedy answers of `model` (a module or an ONNX Runtime session) to inputs `x`, 128 at a time."""
    from solvers.cnn.model import decode

    with torch.inference_mode():
        return [a for k in range(0, len(x), 128) for a in decode(model(x[k : k + 128]), charset)]


def exported(state: dict[str, Any], name: str) -> None:
    """Refuse, with the figures, a checkpoint whose ONNX graph read its validation items otherwise (check_export)."""
    record = state.get("export") or {}
    if record.get("differ"):
        raise CNNError(f"checkpoint {name}: its ONNX graph read {record['differ']} of {record['items']} validation items "
                       "otherwise than PyTorch did when it was trained: read it with -o engine=torch, and report it")


def initialise(model: CaptchaNet, model_cfg: CNNConfig, path: Path, folded: bool = False) -> dict[str, Any]:
    """Load a checkpoint's weights into `model`; return what the card says of it.

    The input size may differ (convolutions slide and the last pooling spans whatever height is left),
    and so may the first stage's kind (`strided`: its convolution has the same shape) and the GRU's
    size: then the GRU and the head start from random weights (a layer loads whole or not at all),
    named in the card as `fresh`. So may the charset: each class of the head then starts from the
    checkpoint's class for the same character (a letter of a `folded` run from the mean of both cases)."""
    state = load_checkpoint(path)  # weights_only=True, with its refusals
    if not fits(model_cfg, state["config"]):
        raise CNNError(f"--init {path}: its model config {state['config']} differs from this run's "
                       f"{model_cfg.to_dict()} beyond input size, charset, strided and hidden: give matching "
                       "--model channels, colour, fit and crop, or --from-scratch")
    own, given = model.state_dict(), state["state_dict"]
    misfits = {_layer(k) for k, v in own.items() if k not in given or given[k].shape != v.shape}
    fitting = {k: v for k, v in given.items() if k in own and _layer(k) not in misfits}  # whole layers, never half
    fresh = sorted(k for k in own if k not in fitting)
    model.load_state_dict(fitting, strict=False)
    rows = dddd.class_rows(state["charset"], model_cfg.charset, folded) if state["charset"] != model_cfg.charset else {}
    if rows and "head" in misfits and given["head.weight"].shape[1] == own["head.weight"].shape[1]:
        with torch.no_grad():  # each class starts from the one that writes its character (both cases: their mean)
            for new, old in rows.items():
                model.head.weight[new] = given["head.weight"][old].mean(0)
                model.head.bias[new] = given["head.bias"][old].mean(0)
        unwritten = len(model_cfg.charset) + 1 - len(rows)
        fresh = [k for k in fresh if _layer(k) != "head"] + (
            [f"head: {unwritten} classes of characters the checkpoint does not write"] if unwritten else [])
    best = max(state.get("history") or [{"val_accuracy": None}], key=lambda h: h["val_accuracy"] or 0)
    return {"path": str(path), "sha256": ds.sha256_bytes(path.read_bytes()), "data": state.get("data"),
            "train": state.get("train"), "val_accuracy": best["val_accuracy"],
            "input": [state["config"]["width"], state["config"]["height"]], "config": state["config"], "fresh": fresh}


FREE = ("height", "width", "strided", "hidden", "charset")  # what --init may change; the rest is what convolutions read


def fits(model_cfg: CNNConfig, config: dict[str, Any]) -> bool:
    """Whether a checkpoint of this `config` can start a run of `model_cfg` (see `initialise`)."""
    theirs = {k: v for k, v in CNNConfig.from_dict(config).to_dict().items() if k not in FREE}
    return theirs == {k: v for k, v in model_cfg.to_dict().items() if k not in FREE}


def general_start(model_cfg: CNNConfig) -> Path | None:
    """The shipped general CNN (general.pt, no longer the general reader: plan.py), where a run of `model_cfg` can start from it; else None."""
    from solvers.cnn.plan import GENERAL, shipped

    path = shipped(GENERAL)
    if not path.is_file():
        return None
    return path if fits(model_cfg, load_checkpoint(path)["config"]) else None


def _layer(key: str) -> str:
    """The layer a state_dict key belongs to: `rnn.weight_hh_l0` -> `rnn`, `features.0.weight` -> `features.0`."""
    return key.rsplit(".", 1)[0]


def record_lengths(checkpoint: Path, dataset: Path) -> tuple[int, int]:
    """Write into a checkpoint trained before `train` recorded answer lengths the lengths of the data set
    it was trained on; refused unless the data set's hash is the one the checkpoint names. The weights
    and everything else in it stay as they were."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    data = ds.read_dataset(dataset)
    trained_on = (state.get("data") or {}).get("sha256")
    if trained_on != data.hash:
        raise CNNError(f"{checkpoint} was trained on data {str(trained_on)[:12]}, not {dataset} ({data.hash[:12]})")
    lengths = answer_lengths([s.answer for s in data.samples])
    with replacing(Path(checkpoint)) as tmp:
        torch.save({**state, "lengths": list(lengths)}, tmp)
    return lengths


SHAPE_TOLERANCE = 1.25  # image width or height this many times larger or smaller than trained on: said


def mismatch(name: str, state: dict[str, Any], about: dict[str, Any]) -> list[str]:
    """Why a checkpoint may read this data set (`about`, as solvers/base.py describes it) badly, in
    words: trained on these very items, on another scheme, or on images of another size. The general
    reader (trained on the `mixed` scheme) is meant for any set, so only the first applies to it."""
    from captchas.spec import PRESETS

    data = state.get("data") or {}
    said = []
    if about.get("sha256") and data.get("sha256") == about["sha256"]:
        said.append(f"checkpoint {name} was trained on these very items (data set {about['sha256'][:12]}): "
                    "this measures training accuracy, not reading; test on other items")
    scheme, image = data.get("scheme"), data.get("image")
    if scheme is None and data.get("dataset") is None and state.get("preset") in PRESETS:  # before train recorded them
        spec = PRESETS[state["preset"]]
        scheme, image = "image", [spec.width, spec.height]
    if scheme == "mixed":
        return said
    if scheme and about.get("scheme") and scheme != about["scheme"]:
        said.append(f"checkpoint {name} was trained on scheme {scheme!r}, this data set is {about['scheme']!r}: "
                    "expect worse reading; fine-tune with captcha-bench train --dataset")
    theirs = about.get("image")
    if image and theirs and all(image) and all(theirs) and any(
            not 1 / SHAPE_TOLERANCE <= a / b <= SHAPE_TOLERANCE for a, b in zip(theirs, image)):
        said.append(f"checkpoint {name} was trained on {image[0]}x{image[1]} images, these are {theirs[0]}x{theirs[1]}: "
                    "expect worse reading; fine-tune with captcha-bench train --dataset")
    return said
