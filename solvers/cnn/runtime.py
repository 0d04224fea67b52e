"""The CNN's inference copy as an ONNX graph, run by ONNX Runtime on the CPU.

On this project's 2-core machine ONNX Runtime reads a batch of hard items about a third faster
than PyTorch, and one item alone about three times faster: PyTorch pays its per-operator cost on
every call, which at batch 1 is most of the time (README, "CNN"). The graph is written here, node
by node, from the weights of `for_inference(model)`, so nothing is traced or exported: each layer
maps to one ONNX operator (Conv with the folded BatchNorm, Relu, MaxPool, GRU, MatMul, Add), and
a test checks that both runtimes give the same logits and the same answers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from solvers.cnn.model import CaptchaNet, PairwiseMax

OPSET = 17


def available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def to_onnx(fast: nn.Module) -> bytes:
    """The serialized ONNX model of an inference copy (`for_inference`): input "x" (B, C, H, W),
    output "logits" (B, T, classes). ddddocr's recognizer is written by dddd.to_onnx."""
    if not isinstance(fast, CaptchaNet):
        from solvers.cnn import dddd

        return dddd.to_onnx(fast, OPSET)  # type: ignore[arg-type]
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    weights: list[Any] = []

    def constant(name: str, value: np.ndarray) -> str:
        weights.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    flow = "x"
    for i, layer in enumerate(fast.features):
        out = f"f{i}"
        if isinstance(layer, nn.Conv2d):
            assert layer.bias is not None, "to_onnx takes for_inference's copy, whose convolutions carry the BatchNorm"
            w = constant(f"conv{i}.w", layer.weight.detach().contiguous().numpy())
            b = constant(f"conv{i}.b", layer.bias.detach().numpy())
            nodes.append(helper.make_node("Conv", [flow, w, b], [out], kernel_shape=list(layer.kernel_size),
                                          strides=list(layer.stride), pads=[*layer.padding, *layer.padding]))
        elif isinstance(layer, nn.ReLU):
            nodes.append(helper.make_node("Relu", [flow], [out]))
        elif isinstance(layer, (nn.MaxPool2d, PairwiseMax)):
            if isinstance(layer, nn.MaxPool2d) and (layer.stride != layer.kernel_size or layer.padding not in (0, (0, 0))):
                raise ValueError("to_onnx: max pooling is expected with stride = kernel and no padding, as CaptchaNet has")
            kernel = ([layer.rows, layer.columns] if isinstance(layer, PairwiseMax)
                      else list(layer.kernel_size) if isinstance(layer.kernel_size, tuple) else [layer.kernel_size] * 2)
            nodes.append(helper.make_node("MaxPool", [flow], [out], kernel_shape=kernel, strides=kernel))
        else:
            raise ValueError(f"to_onnx: no ONNX operator for {type(layer).__name__}")
        flow = out

    # (B, C, 1, T) -> (T, B, C): the GRU's default layout
    nodes.append(helper.make_node("Squeeze", [flow, constant("axis2", np.array([2], dtype=np.int64))], ["seq_bct"]))
    nodes.append(helper.make_node("Transpose", ["seq_bct"], ["seq"], perm=[2, 0, 1]))
    rnn, hidden = fast.rnn, fast.rnn.hidden_size

    def zrn(t: torch.Tensor) -> np.ndarray:  # PyTorch keeps the gates as r, z, n; ONNX as z, r, h
        r, z, n = t.detach().chunk(3, 0)
        return torch.cat([z, r, n]).numpy()

    directions = ["", "_reverse"]
    gates_x = np.stack([zrn(getattr(rnn, f"weight_ih_l0{d}")) for d in directions])
    gates_h = np.stack([zrn(getattr(rnn, f"weight_hh_l0{d}")) for d in directions])
    biases = np.stack([np.concatenate([zrn(getattr(rnn, f"bias_ih_l0{d}")), zrn(getattr(rnn, f"bias_hh_l0{d}"))])
                       for d in directions])
    gru = [constant("gru.w", gates_x), constant("gru.r", gates_h), constant("gru.b", biases)]
    nodes.append(helper.make_node("GRU", ["seq", *gru], ["gru_y"], hidden_size=hidden, direction="bidirectional",
                                  linear_before_reset=1))  # PyTorch's GRU: r multiplies (W_hn h + b_hn)
    # (T, 2, B, H) -> (B, T, 2H): both directions side by side, as PyTorch's output
    nodes.append(helper.make_node("Transpose", ["gru_y"], ["gru_bt"], perm=[2, 0, 1, 3]))
    nodes.append(helper.make_node("Reshape", ["gru_bt", constant("bt_2h", np.array([0, 0, -1], dtype=np.int64))],
                                  ["features"]))
    head_w = constant("head.w", fast.head.weight.detach().t().contiguous().numpy())
    nodes.append(helper.make_node("MatMul", ["features", head_w], ["scores"]))
    nodes.append(helper.make_node("Add", ["scores", constant("head.b", fast.head.bias.detach().numpy())], ["logits"]))

    config = fast.config
    graph = helper.make_graph(
        nodes, "captcha_bench_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", config.planes, config.height, config.width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", config.steps, len(config.charset) + 1])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="captcha-bench")
    onnx.checker.check_model(model)
    return model.SerializeToString()


class Session:
    """An ONNX Runtime session of one model, one thread per call: callers run chunks side by side
    from their own threads (a session may be run from several threads at once)."""

    def __init__(self, fast: nn.Module) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: the runtime must not write to the terminal
        self.session = ort.InferenceSession(to_onnx(fast), options, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for `preprocess(...)` output (any memory layout)."""
        (logits,) = self.session.run(None, {"x": x.contiguous().numpy()})
        return torch.from_numpy(logits)
