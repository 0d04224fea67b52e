"""The CNN: a small convolutional stack read left to right by a GRU, trained with CTC.

CTC lets one model read answers of any length up to the number of columns (`steps`), so every
preset uses the same architecture. The config travels inside the checkpoint (like nanoGPT's
model_args): loading needs nothing else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn


@dataclass(frozen=True)
class CNNConfig:
    charset: str  # output symbols; CTC's blank is class 0, symbol i is class i + 1
    height: int = 24  # input rows: grey, resized; small enough for 1,500 items/s on 2 cores
    width: int = 72  # input columns; the model reads width / 4 columns (steps)
    channels: tuple[int, ...] = (16, 32, 48, 64)  # conv stages; pools halve H and W, then H only
    hidden: int = 64  # GRU units per direction
    colour: bool = False  # read RGB (3 input channels) instead of grey: for text whose colour, not brightness, stands out
    strided: bool = False  # first stage: one stride-2 convolution instead of a convolution then 2x2 max pooling
    fit: str = "stretch"  # image to input: "stretch" resizes to width x height; "pad" keeps the aspect, pads with the background
    crop: bool = False  # first crop the image to its ink's bounding box (ink_box): for text in a band of a larger image
    arch: str = "crnn"  # "crnn": CaptchaNet; "ddddocr": ddddocr's recognizer (dddd.py: 64 rows, channels and hidden fixed)

    @property
    def planes(self) -> int:
        """Input channels: 3 for colour, 1 for grey."""
        return 3 if self.colour else 1

    @property
    def steps(self) -> int:
        """Columns the GRU reads: the most characters CTC can emit is about half of this."""
        return self.width // (8 if self.arch == "ddddocr" else 4)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CNNConfig:
        return cls(**{**d, "channels": tuple(d["channels"])})


ARCHES = ("crnn", "ddddocr")


def build(config: CNNConfig) -> nn.Module:
    """The untrained network a config describes: CaptchaNet, or ddddocr's recognizer with a head of the
    config's charset (random; dddd.start gives it ddddocr's weights)."""
    if config.arch == "ddddocr":
        from solvers.cnn.dddd import DdddNet  # onnx is read only when ddddocr's weights are

        return DdddNet(len(config.charset) + 1)
    return CaptchaNet(config)


class CaptchaNet(nn.Module):
    def __init__(self, config: CNNConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        c_in, h = config.planes, config.height
        for i, c in enumerate(config.channels):
            pool = (2, 2) if i < 2 else (2, 1) if i < len(config.channels) - 1 else (h, 1)
            if i == 0 and config.strided:  # a quarter of the first stage's work, at full resolution the costliest;
                # Identity keeps the later layers' indices, so weights of either kind can start the other (--init)
                layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c),
                           nn.ReLU(inplace=True), nn.Identity()]
            else:
                layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                           nn.MaxPool2d(pool)]
            c_in, h = c, h // pool[0]
        self.features = nn.Sequential(*layers)
        self.rnn = nn.GRU(c_in, config.hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * config.hidden, len(config.charset) + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)  # (B, C, 1, T)
        f = f.squeeze(2).transpose(1, 2)  # (B, T, C)
        y, _ = self.rnn(f)  # (B, T, 2 * hidden)
        return self.head(y)  # (B, T, classes): logits


def for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode copy that computes the same function faster on CPU: each BatchNorm folded into
    the convolution before it, each max pooling moved before its ReLU (the same numbers, since ReLU
    keeps order, on a quarter of the values) and, where its windows are 2x2 or 2x1, done by
    PairwiseMax; Identity layers dropped, and parameters in NHWC (channels_last) layout, where
    oneDNN's convolution is quickest. Feed it `preprocess(...)` output, which is NHWC too. The copy
    has no BatchNorm modules, so its state_dict is not a checkpoint's: save the original. ddddocr's
    recognizer has nothing to fold: an eval-mode NHWC copy."""
    import copy

    fast = copy.deepcopy(model).eval()
    if not isinstance(fast, CaptchaNet):
        return fast.to(memory_format=torch.channels_last)
    folded: list[nn.Module] = []
    for layer in fast.features:
        if isinstance(layer, nn.BatchNorm2d) and folded and isinstance(folded[-1], nn.Conv2d):
            conv = folded.pop()
            assert isinstance(conv, nn.Conv2d) and conv.bias is None  # CaptchaNet's convolutions have none
            assert layer.running_mean is not None and layer.running_var is not None
            scale = layer.weight.detach() / torch.sqrt(layer.running_var + layer.eps)
            merged = nn.Conv2d(conv.in_channels, conv.out_channels, 3, stride=conv.stride[0], padding=1,
                               bias=True)  # 3x3, padding 1, stride 1 or 2: as CaptchaNet builds them
            merged.weight.data = conv.weight.detach() * scale.view(-1, 1, 1, 1)
            merged.bias.data = layer.bias.detach() - layer.running_mean * scale  # type: ignore[union-attr]
            folded.append(merged)
        elif isinstance(layer, nn.MaxPool2d) and folded and isinstance(folded[-1], nn.ReLU):
            folded.insert(len(folded) - 1, PairwiseMax.of(layer) or layer)
        elif not isinstance(layer, nn.Identity):
            folded.append(layer)
    fast.features = nn.Sequential(*folded)
    return fast.eval().to(memory_format=torch.channels_last)


class PairwiseMax(nn.Module):
    """Max pooling over 2x2 or 2x1 windows as elementwise maxima of every other row (and column): the
    same numbers as nn.MaxPool2d, but about 40 % faster on channels-last input, where PyTorch's own
    pooling took as long as hard's first convolution (README, "CNN")."""

    def __init__(self, rows: int, columns: int) -> None:
        super().__init__()
        self.rows, self.columns = rows, columns

    @classmethod
    def of(cls, pool: nn.MaxPool2d) -> PairwiseMax | None:
        """The PairwiseMax that computes what `pool` does, or None where it is not one of these."""
        kernel, stride = pool.kernel_size, pool.stride
        if kernel not in ((2, 2), (2, 1)) or stride != kernel or pool.padding not in (0, (0, 0)) \
                or pool.dilation not in (1, (1, 1)) or pool.ceil_mode:
            return None
        return cls(*kernel)  # type: ignore[misc]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2] - x.shape[2] % self.rows, x.shape[3] - x.shape[3] % self.columns  # floor, as MaxPool2d
        x = x[:, :, :h, :w]
        x = torch.maximum(x[:, :, 0::2], x[:, :, 1::2])
        return torch.maximum(x[:, :, :, 0::2], x[:, :, :, 1::2]) if self.columns == 2 else x


FITS = ("stretch", "pad")
NATIVE = "native"  # a fit for reading only: each image to the model's rows, its aspect kept, as ddddocr reads (dddd.read_native)


def input_bytes(image: Image.Image, config: CNNConfig) -> bytes:
    """The one image-to-input step, for training and solving alike: grey (or RGB), cropped to the ink
    (with `crop`), resized (`fit`), H x W (x 3) bytes."""
    image = image.convert("RGB" if config.colour else "L")
    if config.crop:
        image = image.crop(ink_box(image))
    size = (config.width, config.height)
    if config.fit != "pad":
        return image.resize(size, Image.Resampling.BILINEAR).tobytes()
    scale = min(config.width / image.width, config.height / image.height)
    inner = (max(1, min(config.width, round(image.width * scale))), max(1, min(config.height, round(image.height * scale))))
    canvas = Image.new(image.mode, size, _background(image))
    canvas.paste(image.resize(inner, Image.Resampling.BILINEAR),
                 ((config.width - inner[0]) // 2, (config.height - inner[1]) // 2))
    return canvas.tobytes()


def _background(image: Image.Image) -> Any:
    """The median colour of the image's outermost pixels: what padding is filled with."""
    a = np.asarray(image)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]]).reshape(-1, len(image.getbands()))
    median = np.median(border, axis=0).astype(int)
    return int(median[0]) if len(median) == 1 else tuple(int(v) for v in median)


def ink_box(image: Image.Image, rounds: int = 2) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) around the image's text: the rows, then the columns, whose share of
    pixels far (over 48 of 255) from the border's median grey is at least a sixth (rows) or, averaged
    over half the text's height, a fifth (columns) of the largest share. Done again inside that box, so that text on a band of another
    colour is found in two rounds; then widened by an eighth of its height on every side. The whole
    image where nothing stands out."""
    grey = np.asarray(image.convert("L"), dtype=np.int16)
    left, top, right, bottom = 0, 0, grey.shape[1], grey.shape[0]
    for _ in range(rounds):
        a = grey[top:bottom, left:right]
        border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
        ink = np.abs(a - int(np.median(border))) > 48
        rows, columns = ink.mean(1), ink.mean(0)
        if rows.max() == 0:
            break
        r = np.flatnonzero(rows >= rows.max() / 6)
        window = max(1, (int(r[-1]) + 1 - int(r[0])) // 2)  # columns averaged over half the text's height:
        columns = np.convolve(columns, np.ones(window) / window, mode="same")  # glyphs last, specks do not
        c = np.flatnonzero(columns >= columns.max() / 5)
        left, top, right, bottom = left + int(c[0]), top + int(r[0]), left + int(c[-1]) + 1, top + int(r[-1]) + 1
        if right - left < 2 or bottom - top < 2:
            break
    margin = max(1, round((bottom - top) / 8))
    return (max(0, left - margin), max(0, top - margin), min(grey.shape[1], right + margin),
            min(grey.shape[0], bottom + margin))


def stack(data: list[bytes], config: CNNConfig) -> torch.Tensor:
    """input_bytes of many images as one uint8 tensor: (B, C, H, W)."""
    x = torch.frombuffer(bytearray(b"".join(data)), dtype=torch.uint8)
    if config.colour:  # PIL's RGB bytes are pixel-interleaved
        return x.view(len(data), config.height, config.width, 3).permute(0, 3, 1, 2).contiguous()
    return x.view(len(data), 1, config.height, config.width)


def preprocess(images: list[Image.Image], config: CNNConfig) -> torch.Tensor:
    """Model input scaled to [0, 1]: (B, C, H, W), stored channels-last (NHWC)."""
    x = stack([input_bytes(im, config) for im in images], config).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last)


def decode(logits: torch.Tensor, charset: str) -> list[str]:
    """Greedy CTC: best class per column, repeats merged, blanks dropped."""
    return read_out(logits, charset)[0]


def read_out(logits: torch.Tensor, charset: str,
             lengths: tuple[int, int] | None = None) -> tuple[list[str], list[float]]:
    """Greedy CTC answers and how sure the model is of each: the lowest, over the answer's characters,
    of the character's peak probability across the columns that emit it (0.0 for an empty answer).
    The weakest character, not the product over columns, since an answer is wrong if any one is.
    With `lengths` (shortest, longest), an answer of another length is read instead along the most
    probable path whose answer has an allowed length (`fit_length`): a model trained on five
    characters then never writes four."""
    probabilities = logits.float().softmax(-1)
    peak, best = probabilities.max(-1)  # (B, T): probability and class of the best per column
    read = [_collapse(row, p, charset) for row, p in zip(best.tolist(), peak.tolist())]
    if lengths is not None:
        misfits = [b for b, (answer, _) in enumerate(read) if not lengths[0] <= len(answer) <= lengths[1]]
        if misfits:
            chosen = probabilities[misfits]
            paths = fit_length(chosen.clamp_min(1e-30).log().numpy(), *lengths)
            for b, row, path in zip(misfits, chosen, paths):
                if path is not None:  # else no answer of those lengths fits in these columns: keep the greedy one
                    read[b] = _collapse(path, row[range(len(path)), path].tolist(), charset)
    return [answer for answer, _ in read], [sure for _, sure in read]


def _collapse(path: list[int], probabilities: list[float], charset: str) -> tuple[str, float]:
    """A CTC path's answer (repeats merged, blanks dropped) and its weakest character's peak probability."""
    out: list[str] = []
    peaks: list[float] = []
    previous = 0
    for k, p in zip(path, probabilities):
        if k != 0 and k != previous:
            out.append(charset[k - 1])
            peaks.append(p)
        elif k != 0:  # the same character over more columns: its most confident one counts
            peaks[-1] = max(peaks[-1], p)
        previous = k
    return "".join(out), min(peaks, default=0.0)


def fit_length(logp: np.ndarray, shortest: int, longest: int) -> list[list[int] | None]:
    """For each item of `logp` (B, T, classes: log-probabilities, blank 0), the most probable CTC path
    (a class per column) among those whose answer has between `shortest` and `longest` characters, or
    None where no path has. A Viterbi over (characters so far, last column's class), all items at once;
    a path may emit a character again only after a blank."""
    items, steps, classes = logp.shape
    rows = min(longest, steps) + 1  # k = 0 .. longest characters so far
    if shortest >= rows or classes < 2:
        return [None] * items
    symbols = np.arange(1, classes)
    score = np.full((items, rows, classes), -np.inf)  # best path so far with k characters, ending on a class
    score[:, 0, 0] = logp[:, 0, 0]
    if rows > 1:
        score[:, 1, 1:] = logp[:, 0, 1:]
    back = []
    item, count = np.arange(items)[:, None], np.arange(rows - 1)[None, :]
    for t in range(1, steps):
        first = score.argmax(2)  # (B, rows): the best class so far per k, for a blank or a new character
        top = score[item, np.arange(rows)[None, :], first]
        rest = score[:, :-1].copy()
        rest[item, count, first[:, :-1]] = -np.inf
        second = rest.argmax(2)  # the best other than `first`, for a new character equal to it
        runner = rest[item, count, second]
        same = score[:, :, 1:] + logp[:, t, None, 1:]  # the class of the column before, again: no new character
        before = np.where(first[:, :-1, None] == symbols, runner[..., None], top[:, :-1, None])
        fresh = before + logp[:, t, None, 1:]  # a new character after k - 1
        take = fresh > same[:, 1:]
        score = np.empty_like(score)
        score[:, :, 0] = top + logp[:, t, None, 0]
        score[:, 0, 1:] = same[:, 0]
        score[:, 1:, 1:] = np.where(take, fresh, same[:, 1:])
        back.append((first, second, take))
    paths: list[list[int] | None] = []
    for b in range(items):
        k = max(range(shortest, rows), key=lambda n: score[b, n].max())
        if not np.isfinite(score[b, k].max()):
            paths.append(None)
            continue
        s = int(score[b, k].argmax())
        path = [s]
        for first, second, take in reversed(back):
            if s == 0:  # a blank follows the best class of the same count
                s = int(first[b, k])
            elif k > 0 and take[b, k - 1, s - 1]:  # a new character: from the best other class, one fewer
                k -= 1
                s = int(second[b, k]) if first[b, k] == s else int(first[b, k])
            path.append(s)
        paths.append(path[::-1])
    return paths
