"""The CNN's network and its reading: CTC decoding, shapes, pooling, the inference copy, ONNX Runtime, length fitting."""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed")

from captchas.schemes import image_scheme  # noqa: E402
from solvers.cnn.model import CaptchaNet, CNNConfig, decode, preprocess  # noqa: E402
from solvers.cnn.data import encode  # noqa: E402


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


def test_read_out_gives_each_answer_the_peak_probability_of_its_weakest_character() -> None:
    from solvers.cnn.model import read_out

    p = torch.tensor([[[0.1, 0.9, 0.0], [0.3, 0.6, 0.1], [0.8, 0.1, 0.1], [0.3, 0.0, 0.7]],  # A A blank B
                      [[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05]]])  # blanks
    answers, sure = read_out(p.log(), "AB")
    assert answers == ["AB", ""]
    assert sure[0] == pytest.approx(0.7) and sure[1] == 0.0  # A peaks at 0.9, B at 0.7; nothing read: not sure


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
