"""Test-time views of an image, and the vote that makes one answer of their readings.

Apart from model.py so that resolving options (in the runner's process, for provenance) does not
import torch.
"""

from __future__ import annotations

from PIL import Image

# Test-time views, in this order: the image itself, moved 2 pixels left, right and up, and shrunk and
# grown by 5 % about its centre; uncovered pixels take the top-left pixel's colour. Chosen before any
# was measured, as small versions of the moves that training augmentation makes.
VIEWS = ((1.0, 0, 0), (1.0, -2, 0), (1.0, 2, 0), (1.0, 0, -2), (0.95, 0, 0), (1.05, 0, 0))  # (scale, dx, dy)


def view(image: Image.Image, k: int) -> Image.Image:
    """The k-th of VIEWS of an image (k = 0: the image itself)."""
    scale, dx, dy = VIEWS[k]
    if k == 0:
        return image
    w, h = image.size
    # PIL's affine maps output pixels to input ones: x_in = (x_out - dx - c_x) / scale + c_x, likewise y
    a = 1 / scale
    matrix = (a, 0.0, w / 2 * (1 - a) - dx * a, 0.0, a, h / 2 * (1 - a) - dy * a)
    return image.transform(image.size, Image.Transform.AFFINE, matrix, resample=Image.Resampling.BILINEAR,
                           fillcolor=image.getpixel((0, 0)))


def vote(answers: list[str], sure: list[float]) -> tuple[str, float]:
    """One answer from several readings of an image: the most frequent, ties to the surest; its
    confidence is the highest of the readings that gave it."""
    counts: dict[str, int] = {}
    for a in answers:
        counts[a] = counts.get(a, 0) + 1
    most = max(counts.values())
    confidence, answer = max((c, a) for a, c in zip(answers, sure) if counts[a] == most)
    return answer, confidence
