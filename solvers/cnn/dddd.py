"""ddddocr's published recognizer as a trainable torch module: `--init ddddocr` starts from it.

ddddocr 1.6 installs two recognizers: `common_old.onnx`, its default, dynamically quantized to 8
bits (ConvInteger, DynamicQuantizeLSTM), and `common.onnx` (`beta=True`), the same network in 32-bit
floats. A quantized graph does not train, so this module is the float one: a convolutional trunk
(SiLU activations, residual blocks, three stride-2 stages: 64 rows become 8), its 8 x 64 features per
column read by a bidirectional LSTM of 512 units, and a linear head over 8,210 classes (blank first),
for greedy CTC. About 13.5 M parameters, 8.4 M of them the head.

The module is written here, layer by layer, and the ONNX initializers are loaded into it; the graph's
operators are checked against what the module computes before anything is loaded (the converter
libraries either refuse its LSTM or need an experimental mode: docs/choices.md). A test checks that,
before any training, it reads every item of the shipped sets as ddddocr (beta) does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from solvers.cnn import CNNError

HEIGHT = 64  # rows the network reads; the LSTM's 512 inputs are 64 channels x the 8 rows left
STRIDE = 8  # input columns per output column
TRUNK_LR = 1 / 30  # the trunk's learning rate, as a share of the run's: at the full 3e-3, the first steps after
# unfreezing wrecked it (validation 80 % to 0 % on wheezy.captcha, loss 0.0002 to 8.2)
# The trunk, step by step: ("conv", in, out, kernel, stride, SiLU after it) or ("add", k), which adds
# the output of step k (a residual block's input) to the latest.


def _trunk_plan() -> list[tuple[Any, ...]]:
    plan: list[tuple[Any, ...]] = [("conv", 1, 24, 3, 2, True)]

    def blocks(channels: int, wide: int, count: int) -> None:
        for _ in range(count):
            start = len(plan) - 1
            plan.extend([("conv", channels, wide, 3, 1, True), ("conv", wide, channels, 1, 1, False), ("add", start)])

    blocks(24, 24, 2)
    for c_in, c_wide, c_out in ((24, 96, 48), (48, 192, 64)):  # a stride-2 widening, a 1x1 projection, 3 blocks
        plan.extend([("conv", c_in, c_wide, 3, 2, True), ("conv", c_wide, c_out, 1, 1, False)])
        blocks(c_out, 4 * c_out, 3)
    return plan


PLAN = _trunk_plan()


class DdddNet(nn.Module):
    """ddddocr's recognizer: (B, 1, 64, W) in [0, 1], out (B, W / 8, classes) logits, blank class 0."""

    def __init__(self, classes: int, config: Any = None) -> None:
        super().__init__()
        self.config = config  # the CNNConfig it was built for (None: ddddocr's own 8,210 classes)
        self.plan = PLAN
        self.convs = nn.ModuleList(nn.Conv2d(i, o, k, stride=s, padding=k // 2)
                                   for kind, i, o, k, s, _ in (p for p in PLAN if p[0] == "conv"))
        self.rnn = nn.LSTM(512, 512, bidirectional=True)
        self.head = nn.Linear(1024, classes)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutional features: (B, 64, 8, W / 8)."""
        outputs: list[torch.Tensor] = []
        k = 0
        for step in self.plan:
            if step[0] == "conv":
                x = self.convs[k](x)
                k += 1
                if step[5]:
                    x = nn.functional.silu(x)
            else:
                x = x + outputs[step[1]]
            outputs.append(x)
        return x

    def read(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, classes) from the trunk's features."""
        seq = features.permute(3, 0, 1, 2).flatten(2)  # (T, B, 64 * 8): channel-major, as the graph reshapes
        y, _ = self.rnn(seq)  # (T, B, 1024): both directions side by side
        return self.head(y).transpose(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.read(self.trunk(x))


def onnx_path() -> Path:
    """ddddocr's float recognizer, where the installed ddddocr keeps it."""
    from solvers.ddddocr import model_path

    return model_path(beta=True)


def charset() -> list[str]:
    """The 8,210 classes' characters of that recognizer, blank ("") first, as ddddocr lists them."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        from ddddocr.models.charset_manager import CharsetManager

        manager = CharsetManager()
        manager.load_default_charset(beta=True)
    return manager.get_charset()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def from_onnx(path: Path | None = None) -> DdddNet:
    """The module with the ONNX file's weights, after checking that the graph computes what it does:
    the convolutions' shapes, strides and activations in order, the residual adds, one bidirectional
    LSTM of 512 and the head. ValueError, naming what differs, where it does not."""
    import onnx
    from onnx import numpy_helper

    path = path or onnx_path()
    graph = onnx.load(str(path)).graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nodes = list(graph.node)
    convs = [n for n in nodes if n.op_type == "Conv"]
    lstms = [n for n in nodes if n.op_type == "LSTM"]
    heads = [n for n in nodes if n.op_type == "Gemm"]
    planned = [p for p in PLAN if p[0] == "conv"]
    if len(convs) != len(planned) or len(lstms) != 1 or len(heads) != 1:
        raise CNNError(f"{path.name} is not the recognizer this module reads: {len(convs)} convolutions, "
                       f"{len(lstms)} LSTM, {len(heads)} Gemm (expected {len(planned)}, 1, 1): ddddocr changed its "
                       "model; pin ddddocr 1.6.1")
    activated = {n.input[0] for n in nodes if n.op_type == "Sigmoid"}  # SiLU: x * sigmoid(x)
    adds = sum(1 for n in nodes if n.op_type == "Add")
    if adds != sum(1 for p in PLAN if p[0] == "add"):
        raise CNNError(f"{path.name} has {adds} residual adds, not {sum(1 for p in PLAN if p[0] == 'add')}: pin ddddocr 1.6.1")
    classes = weights[heads[0].input[1]].shape[0]
    net = DdddNet(classes)
    with torch.no_grad():
        for k, (node, (_, c_in, c_out, kernel, stride, silu)) in enumerate(zip(convs, planned)):
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            w, b = weights[node.input[1]], weights[node.input[2]]
            if w.shape != (c_out, c_in, kernel, kernel) or list(attrs["strides"]) != [stride, stride] \
                    or (node.output[0] in activated) != silu or attrs.get("group", 1) != 1:
                raise CNNError(f"{path.name}: convolution {k} is {w.shape}, strides {list(attrs['strides'])}, "
                               f"SiLU {node.output[0] in activated}; expected {(c_out, c_in, kernel, kernel)}, "
                               f"{stride}, {silu}: pin ddddocr 1.6.1")
            conv = cast(nn.Conv2d, net.convs[k])
            conv.weight.copy_(torch.from_numpy(w.copy()))
            cast(torch.Tensor, conv.bias).copy_(torch.from_numpy(b.copy()))
        lstm = lstms[0]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in lstm.attribute}
        if attrs.get("hidden_size") != 512 or attrs.get("direction") != b"bidirectional":
            raise CNNError(f"{path.name}: its LSTM is not bidirectional with 512 units: pin ddddocr 1.6.1")
        w, r, bias = (weights[name] for name in lstm.input[1:4])
        for d, suffix in enumerate(("", "_reverse")):  # ONNX's gates are i, o, f, c; torch's i, f, g(c), o
            getattr(net.rnn, f"weight_ih_l0{suffix}").copy_(_ifco(w[d]))
            getattr(net.rnn, f"weight_hh_l0{suffix}").copy_(_ifco(r[d]))
            getattr(net.rnn, f"bias_ih_l0{suffix}").copy_(_ifco(bias[d][:2048]))
            getattr(net.rnn, f"bias_hh_l0{suffix}").copy_(_ifco(bias[d][2048:]))
        head = heads[0]
        trans = {a.name: onnx.helper.get_attribute_value(a) for a in head.attribute}.get("transB", 0)
        weight = weights[head.input[1]]
        net.head.weight.copy_(torch.from_numpy((weight if trans else weight.T).copy()))
        net.head.bias.copy_(torch.from_numpy(weights[head.input[2]].copy()))
    return net.eval()


def _ifco(gates: np.ndarray) -> torch.Tensor:
    """ONNX's (i, o, f, c) gate blocks as torch's (i, f, c, o)."""
    i, o, f, c = np.split(gates.copy(), 4)
    return torch.from_numpy(np.concatenate([i, f, c, o]))


def keep_rows(net: DdddNet, rows: Sequence[Sequence[int]]) -> DdddNet:
    """The head cut to these classes: new class k is the mean of the old classes rows[k] (one class, or
    a letter's two cases merged; none: it keeps nn.Linear's random start). rows[0] is [0], the blank."""
    head = nn.Linear(1024, len(rows))
    with torch.no_grad():
        for k, old in enumerate(rows):
            if old:
                head.weight[k] = net.head.weight[list(old)].mean(0)
                head.bias[k] = net.head.bias[list(old)].mean(0)
    net.head = head
    return net


def class_rows(theirs: Sequence[str], ours: str, folded: bool) -> dict[int, list[int]]:
    """Our head's classes (blank 0, character i at i + 1) mapped to another head's classes (`theirs`, a
    checkpoint's or ddddocr's, blank first) that write the same character, or (`folded`, or where it writes only the other case) the same letter in either
    case; characters it does not write are left out."""
    rows = {0: [0]}
    for k, c in enumerate(ours):
        either = [i + 1 for i, t in enumerate(theirs) if t.casefold() == c.casefold()]
        same = either if folded else [i + 1 for i, t in enumerate(theirs) if t == c] or either
        if same:
            rows[k + 1] = same
    return rows


def head_rows(classes: Sequence[str], charset: str, folded: bool) -> list[list[int]]:
    """For the blank and each character of `charset`, ddddocr's classes that write it (none: []), by the
    rule `--init CHECKPOINT` keeps rows by (class_rows): the same character or, where `folded`
    (or where it has only the other case), the letter in either case."""
    rows = class_rows(classes[1:], charset, folded)
    return [rows.get(k, []) for k in range(len(charset) + 1)]


def native_input(image: Any) -> torch.Tensor:
    """(1, 1, 64, W) in [0, 1]: the image as ddddocr feeds its recognizer (Lanczos to 64 rows, aspect kept
    and the width rounded down, then grey)."""
    from PIL import Image

    width = max(1, int(image.size[0] * (HEIGHT / image.size[1])))
    grey = image.resize((width, HEIGHT), Image.Resampling.LANCZOS).convert("L")
    return torch.frombuffer(bytearray(grey.tobytes()), dtype=torch.uint8).view(1, 1, HEIGHT, width).float().div_(255.0)


def read_native(model: Any, images: Sequence[Any], device: Any) -> torch.Tensor:
    """(B, T, classes) logits of `model` for images read each at its own width (native_input), on the CPU.
    Images of one width go through together; an item with fewer columns than the widest is padded with
    columns that are surely blank (log-probability 0 for the blank, minus infinity for the rest), which
    change neither its greedy answer nor how sure it is."""
    inputs = [native_input(image) for image in images]
    by_width: dict[int, list[int]] = {}
    for k, x in enumerate(inputs):
        by_width.setdefault(x.shape[3], []).append(k)
    read: dict[int, torch.Tensor] = {}
    for keys in by_width.values():
        logits = model(torch.cat([inputs[k] for k in keys]).to(device)).cpu()
        read.update(zip(keys, logits))
    steps = max(r.shape[0] for r in read.values())
    out = torch.full((len(inputs), steps, next(iter(read.values())).shape[1]), -torch.inf)
    out[:, :, 0] = 0.0
    for k, logits in read.items():
        out[k, : logits.shape[0]] = logits.log_softmax(-1)
    return out


def reader(wanted: str, case_sensitive: bool) -> tuple[DdddNet, str]:
    """ddddocr's float recognizer, untrained, as a reader for a data set of characters `wanted` (either case of a
    letter where `case_sensitive` is False; digits and both cases where the set declares none, as the
    general CNN writes): its head cut to those classes, which the logits then list in ddddocr's order,
    and the characters they write. Read with read_native, it answers as the `ddddocr` solver does with
    beta=True, hold=argmax."""
    import string

    from solvers.ddddocr import allowed

    classes = charset()
    keep = allowed(classes, wanted or string.digits + string.ascii_letters, case_sensitive).tolist()
    net = keep_rows(from_onnx(), [[k] for k in keep])
    return net, "".join(classes[k] for k in keep[1:])


def version() -> str:
    from importlib.metadata import version as installed

    return installed("ddddocr")


def start(config: Any, folded: bool) -> tuple[DdddNet, dict[str, Any]]:
    """ddddocr's recognizer with its head cut to `config.charset` (head_rows), and what a checkpoint
    records of where it started: the file, its sha256, ddddocr's version, characters it had no class for."""
    path = onnx_path()
    net = from_onnx(path)
    rows = head_rows(charset(), config.charset, folded)
    keep_rows(net, rows)
    net.config = config
    unwritten = "".join(c for c, r in zip(config.charset, rows[1:]) if not r)
    return net, {"path": f"ddddocr/{path.name}", "sha256": sha256(path), "ddddocr": version(),
                 "fresh": [f"head: {len(unwritten)} classes ddddocr does not write ({unwritten})"] if unwritten else []}


def changed(net: nn.Module, base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """net's state_dict less the tensors still equal to ddddocr's (`base`): what a checkpoint stores.
    ddddocr's own weights stay in the package that installs them."""
    return {k: v.detach().cpu() for k, v in net.state_dict().items() if k not in base or not torch.equal(v.cpu(), base[k])}


def trunk_weights(net: DdddNet) -> dict[str, torch.Tensor]:
    """The trunk's weights as ddddocr ships them, to compare with later (`changed`)."""
    return {k: v.detach().clone() for k, v in net.state_dict().items() if k.startswith("convs.")}


def load(config: Any, state: dict[str, Any], name: str) -> DdddNet:
    """A trained ddddocr-based network from a checkpoint's `state`: the installed ddddocr's weights,
    refused unless they are the ones it was trained over, with the checkpoint's tensors on top."""
    base = state.get("base") or {}
    path = onnx_path()
    if base.get("sha256") != sha256(path):
        raise CNNError(f"checkpoint {name} was trained over ddddocr's {base.get('path')} with sha256 "
                       f"{str(base.get('sha256'))[:12]} (ddddocr {base.get('ddddocr')}); the installed one differs "
                       f"({version()}): install ddddocr {base.get('ddddocr')}")
    net = from_onnx(path)
    saved = state["state_dict"]
    net.head = nn.Linear(1024, saved["head.weight"].shape[0]) if "head.weight" in saved else net.head
    missing = [k for k in net.state_dict() if k not in saved and not k.startswith("convs.")]
    if missing:
        raise CNNError(f"checkpoint {name} lacks {', '.join(missing[:3])}: it is not a whole trained model")
    net.load_state_dict(saved, strict=False)
    net.config = config
    return net.eval()


def to_onnx(net: DdddNet, opset: int = 17) -> bytes:
    """The serialized ONNX graph of `net`, written node by node as runtime.to_onnx does for CaptchaNet:
    input "x" (B, 1, 64, W), output "logits" (B, W / 8, classes)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    weights: list[Any] = []

    def constant(name: str, value: np.ndarray) -> str:
        weights.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    outputs: list[str] = []
    flow, k = "x", 0
    for i, step in enumerate(net.plan):
        out = f"t{i}"
        if step[0] == "conv":
            conv = cast(nn.Conv2d, net.convs[k])
            k += 1
            w = constant(f"conv{i}.w", conv.weight.detach().contiguous().numpy())
            b = constant(f"conv{i}.b", cast(torch.Tensor, conv.bias).detach().numpy())
            pad = step[3] // 2
            nodes.append(helper.make_node("Conv", [flow, w, b], [out + ("c" if step[5] else "")],
                                          kernel_shape=[step[3]] * 2, strides=[step[4]] * 2, pads=[pad] * 4))
            if step[5]:  # SiLU: x * sigmoid(x)
                nodes.append(helper.make_node("Sigmoid", [out + "c"], [out + "s"]))
                nodes.append(helper.make_node("Mul", [out + "c", out + "s"], [out]))
        else:
            nodes.append(helper.make_node("Add", [flow, outputs[step[1]]], [out]))
        outputs.append(out)
        flow = out
    nodes.append(helper.make_node("Transpose", [flow], ["columns"], perm=[3, 0, 1, 2]))  # (T, B, C, H)
    flat = constant("t_b_rest", np.array([0, 0, -1], dtype=np.int64))
    nodes.append(helper.make_node("Reshape", ["columns", flat], ["seq"]))  # (T, B, 512)
    rnn = net.rnn

    def iofc(t: torch.Tensor) -> np.ndarray:  # torch keeps the gates as i, f, g(c), o; ONNX as i, o, f, c
        i, f, g, o = t.detach().chunk(4, 0)
        return torch.cat([i, o, f, g]).numpy()

    directions = ["", "_reverse"]
    lstm = [constant("lstm.w", np.stack([iofc(getattr(rnn, f"weight_ih_l0{d}")) for d in directions])),
            constant("lstm.r", np.stack([iofc(getattr(rnn, f"weight_hh_l0{d}")) for d in directions])),
            constant("lstm.b", np.stack([np.concatenate([iofc(getattr(rnn, f"bias_ih_l0{d}")),
                                                         iofc(getattr(rnn, f"bias_hh_l0{d}"))]) for d in directions]))]
    nodes.append(helper.make_node("LSTM", ["seq", *lstm], ["lstm_y"], hidden_size=rnn.hidden_size, direction="bidirectional"))
    nodes.append(helper.make_node("Transpose", ["lstm_y"], ["lstm_t"], perm=[0, 2, 1, 3]))  # (T, B, 2, 512)
    nodes.append(helper.make_node("Reshape", ["lstm_t", flat], ["both"]))  # (T, B, 1024)
    nodes.append(helper.make_node("MatMul", ["both", constant("head.w", net.head.weight.detach().t().contiguous().numpy())],
                                  ["scores"]))
    nodes.append(helper.make_node("Add", ["scores", constant("head.b", net.head.bias.detach().numpy())], ["scores_b"]))
    nodes.append(helper.make_node("Transpose", ["scores_b"], ["logits"], perm=[1, 0, 2]))
    graph = helper.make_graph(
        nodes, "captcha_bench_ddddocr",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, HEIGHT, "width"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "steps", net.head.out_features])],
        initializer=weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="captcha-bench")
    onnx.checker.check_model(model)
    return model.SerializeToString()
