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

from captchas import dataset as ds
from solvers.cnn.data import answer_lengths
from solvers.cnn.model import CaptchaNet, CNNConfig

if TYPE_CHECKING:
    from solvers.cnn.train import TrainConfig

CHECKPOINT_FORMAT = 1


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's dict; anything but tensors and plain data is refused, with the reason."""
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist: train one with captcha-bench train")
    with path.open("rb") as f:
        head = f.read(4)
    if head != b"PK\x03\x04" and head[:1] != b"\x80":  # torch.save's zip format, or its legacy pickle
        raise ValueError(f"checkpoint {path} is not a readable torch checkpoint (neither zip nor pickle)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(f"checkpoint {path} holds more than tensors and plain data, refused "
                         "(loaded with weights_only=True)") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise ValueError(f"checkpoint {path} is not a readable torch checkpoint ({e})") from None
    if not isinstance(state, dict) or not {"config", "state_dict", "charset"} <= set(state):
        raise ValueError(f"checkpoint {path} is not a captcha-bench CNN checkpoint (no config, charset, state_dict)")
    return state


def save(cfg: TrainConfig, model: CaptchaNet, model_cfg: CNNConfig, preset: str | None, case_sensitive: bool,
          folded: bool, data_hash: str, n_train: int, n_val: int, history: list[dict[str, Any]], device: torch.device,
          started_from: dict[str, Any] | None = None, lengths: tuple[int, int] | None = None,
          mixed: dict[str, Any] | None = None, described: dict[str, Any] | None = None) -> dict[str, Any]:
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
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = Path(str(cfg.out) + ".tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**meta, "state_dict": state}, tmp)
    tmp.replace(cfg.out)
    return meta


def annotate(path: Path, **fields: Any) -> None:
    """Add `fields` to the checkpoint at `path`, atomically."""
    state = {**torch.load(path, map_location="cpu", weights_only=True), **fields}
    tmp = Path(str(path) + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def initialise(model: CaptchaNet, model_cfg: CNNConfig, path: Path) -> dict[str, Any]:
    """Load a checkpoint's weights into `model`; return what the card says of it.

    The input size may differ (convolutions slide and the last pooling spans whatever height is left),
    and so may the first stage's kind (`strided`: its convolution has the same shape) and the GRU's
    size: then the GRU and the head start from random weights (a layer loads whole or not at all),
    named in the card as `fresh`."""
    state = load_checkpoint(path)  # weights_only=True, with its refusals
    free = ("height", "width", "strided", "hidden")  # every other field changes what the convolutions read or write
    theirs = {k: v for k, v in CNNConfig.from_dict(state["config"]).to_dict().items() if k not in free}
    ours = {k: v for k, v in model_cfg.to_dict().items() if k not in free}
    if theirs != ours:
        raise ValueError(f"--init {path}: its model config {state['config']} differs from this run's "
                         f"{model_cfg.to_dict()} beyond input size, --strided and --hidden: give matching "
                         "--channels/--colour and data")
    own, given = model.state_dict(), state["state_dict"]
    misfits = {_layer(k) for k, v in own.items() if k not in given or given[k].shape != v.shape}
    fitting = {k: v for k, v in given.items() if k in own and _layer(k) not in misfits}  # whole layers, never half
    fresh = sorted(k for k in own if k not in fitting)
    model.load_state_dict(fitting, strict=False)
    best = max(state.get("history") or [{"val_accuracy": None}], key=lambda h: h["val_accuracy"] or 0)
    return {"path": str(path), "sha256": ds.sha256_bytes(path.read_bytes()), "data": state.get("data"),
            "train": state.get("train"), "val_accuracy": best["val_accuracy"],
            "input": [state["config"]["width"], state["config"]["height"]], "config": state["config"], "fresh": fresh}


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
        raise ValueError(f"{checkpoint} was trained on data {str(trained_on)[:12]}, not {dataset} ({data.hash[:12]})")
    lengths = answer_lengths([s.answer for s in data.samples])
    tmp = Path(str(checkpoint) + ".tmp")
    torch.save({**state, "lengths": list(lengths)}, tmp)
    tmp.replace(checkpoint)
    return lengths
