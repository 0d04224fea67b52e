"""The `cnn` solver: our trained model. Weights load with torch.load(weights_only=True)."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PIL import Image

from captchas.dataset import Challenge

WEIGHTS = Path(__file__).resolve().parent / "weights"  # shipped: <preset>.pt with a model card <preset>.md


def shipped(preset: str) -> Path:
    return WEIGHTS / f"{preset}.pt"


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's dict; anything but tensors and plain data is refused, with the reason."""
    import torch

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


class CNNSolver:
    """Greedy CTC decoding of our CNN, batched on the chosen device."""

    name = "cnn"

    @staticmethod
    def check() -> str | None:
        try:
            import torch  # noqa: F401
        except ImportError:
            return "torch is not installed: pip install torch"
        if not any(WEIGHTS.glob("*.pt")):
            return "no shipped weights yet: train them with captcha-bench train (or give -o checkpoint=PATH)"
        return None

    @staticmethod
    def files(checkpoint: str = "", preset: str = "", **_: Any) -> dict[str, Path]:
        """The weights these options load, hashed into a run's provenance (shipped ones too)."""
        if checkpoint:
            return {"checkpoint": Path(checkpoint)}
        return {"checkpoint": shipped(preset)} if preset else {}

    def __init__(self, checkpoint: str = "", preset: str = "", charset: str = "", device: str = "cpu",
                 batch_size: int = 64, any_preset: bool = False, parallel: bool = True) -> None:
        import torch

        from solvers.cnn.model import CaptchaNet, CNNConfig, for_inference

        if not checkpoint and not preset:
            raise ValueError("no checkpoint: give -o checkpoint=PATH (this data set names no preset)")
        path = self.files(checkpoint, preset)["checkpoint"]
        if not checkpoint and not path.is_file():
            raise ValueError(f"no shipped weights for preset {preset!r}: train with "
                             f"captcha-bench train --preset {preset}, or give -o checkpoint=PATH")
        state = load_checkpoint(path)
        if preset and state.get("preset") and state["preset"] != preset and not any_preset:
            raise ValueError(f"checkpoint {path.name} was trained on preset {state['preset']!r}, the data set is "
                             f"{preset!r}: use matching weights, or -o any_preset=True to test it across presets")
        writes = set(state["charset"])
        if state.get("folded"):  # trained on case-folded answers of a case-insensitive set: compare folded
            charset = charset.casefold()
        unknown = sorted(set(charset) - writes)
        if unknown and not any_preset:
            raise ValueError(f"checkpoint {path.name} cannot write {''.join(unknown)!r}, which this data set uses "
                             "(a different charset): use matching weights, or -o any_preset=True")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device cuda: no CUDA device here; use -o device=cpu")
        self.config = CNNConfig.from_dict(state["config"])
        self.device = torch.device(device)
        model = CaptchaNet(self.config)
        model.load_state_dict(state["state_dict"])
        self.model = for_inference(model).to(self.device)  # BatchNorm folded, NHWC: about 2.5x faster on CPU
        # 64 per forward pass: at 256 the first stage's activations (100 MB for hard's 160x40 input) spill the
        # caches, and on this project's 2-core machine throughput fell by about a third (README, "CNN")
        self.batch_size = batch_size
        # on CPU, chunks run side by side with one core each: small convolutions and the GRU's steps divide
        # poorly between cores, so whole chunks per core read more items per second (batch 1 keeps every core)
        cores = torch.get_num_threads()
        self.pool = (ThreadPoolExecutor(cores, initializer=torch.set_num_threads, initargs=(1,))
                     if parallel and cores > 1 and self.device.type == "cpu" else None)

    def _read(self, images: list[Image.Image]) -> list[str]:
        import torch

        from solvers.cnn.model import decode, preprocess

        with torch.inference_mode():
            x = preprocess(images, self.config).to(self.device)
            return decode(self.model(x).cpu(), self.config.charset)

    def solve(self, batch: Sequence[Challenge]) -> list[str]:
        chunks = [[c.image for c in batch[k : k + self.batch_size]] for k in range(0, len(batch), self.batch_size)]
        if self.pool is None or len(chunks) < 2:
            return [a for chunk in chunks for a in self._read(chunk)]
        return [a for answers in self.pool.map(self._read, chunks) for a in answers]
