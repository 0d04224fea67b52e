"""Training that needs no tuning: the input size from the data, the length of training from its
size (or the minutes given: schedule.py), validation often enough to draw a curve, and plain words when the
model did not learn or was still learning when training stopped.

Pure functions; train.py calls them where its options were left out.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from PIL import Image

from solvers.cnn.model import ink_box

HEIGHT = 32  # input rows for a data set: glyphs of 20-30 rows, as the shipped presets have
PIXELS_PER_CHARACTER = 16  # input columns per character of the longest answer, at least
MAX_WIDTH = 320  # input columns, at most: 80 columns for CTC
DDDDOCR_HEIGHT, DDDDOCR_STRIDE = 64, 8  # ddddocr's recognizer: 64 rows in, a column out per 8 (dddd.py)
MODEL = {"channels": (16, 32, 64, 96), "hidden": 96}  # for data sets: the TuringPass weights' size
SAMPLE = 300  # images whose ink is measured
ITEMS_SEEN = 200_000  # without --epochs: about this many items are trained on, 3 to 60 epochs
CURVE = 10  # validation points, at least, over a run
CHANCE = 0.05  # best validation below this: the model did not learn
RISING = 0.02  # validation gained at least this over the last quarter of the run: still learning


def geometry(images: Sequence[Image.Image], longest: int, given: dict[str, Any]) -> dict[str, Any]:
    """The model options for a data set, where `given` (the options set on the command line) leaves
    them out. With ddddocr's recognizer (arch "ddddocr"): 64 rows and the whole image's median aspect,
    as ddddocr resizes an image, with two columns per character at least. With neither height nor width given: crop to the ink, keep its aspect (padding), 32
    rows, and as many columns as the ink's median aspect asks, but at least 16 per character; and
    the TuringPass weights' size of model. With either given, nothing: the model's own defaults, as
    before this module."""
    if given.get("arch") == "ddddocr":  # its 64 rows, the whole image as ddddocr reads it, aspect kept
        aspect = statistics.median(im.width / max(1, im.height) for im in images) if images else 3.0
        width = max(DDDDOCR_HEIGHT * aspect, DDDDOCR_STRIDE * (2 * longest + 1))
        return {"height": DDDDOCR_HEIGHT, "width": min(MAX_WIDTH * 2, DDDDOCR_STRIDE * round(width / DDDDOCR_STRIDE))}
    if "height" in given or "width" in given:
        return {}
    chosen = {k: v for k, v in MODEL.items() if k not in given}
    step = max(1, len(images) // SAMPLE)
    boxes = [ink_box(im) for im in images[::step]]
    aspect = statistics.median((r - l) / max(1, b - t) for l, t, r, b in boxes) if boxes else 3.0
    width = max(round(HEIGHT * aspect), PIXELS_PER_CHARACTER * longest, 4 * (2 * longest + 1))
    width = min(MAX_WIDTH, 4 * math.ceil(width / 4))
    return {**chosen, "height": HEIGHT, "width": width, "fit": "pad", "crop": True}


def image_shape(images: Sequence[Image.Image]) -> list[int]:
    """The median image's width and height: what a checkpoint says it was trained on."""
    if not images:
        return [0, 0]
    return [int(statistics.median(im.width for im in images)), int(statistics.median(im.height for im in images))]


def epochs_for(items: int) -> float:
    """Passes over a data set of `items` training items when --epochs is left out: about 200,000
    items seen in all, 3 passes at least and 60 at most."""
    return min(60.0, max(3.0, ITEMS_SEEN / max(1, items)))


def eval_every(total: int) -> int:
    """Steps between validation passes: every 250, or often enough for ten points on a shorter run."""
    return max(1, min(250, total // CURVE))


def warnings(history: Sequence[dict[str, Any]], started: bool = False, generated: bool = False) -> list[str]:
    """What to say of a finished run, with the figures and what to try: empty when all looks well.
    `started`: the run began from other weights (--init, or the general CNN); `generated`: it trained
    on items it rendered (a preset or scheme), which more time alone can multiply."""
    if not history:
        return []
    said = []
    best = max(h["val_accuracy"] for h in history)
    if best < CHANCE:
        said.append(f"the model did not learn: validation reached {best:.1%} at best (of {len(history)} checks). "
                    + ("It trained on items it rendered: give more --minutes (more items, more steps), or leave "
                       "--minutes out for the full run" if generated else
                       "It started from pre-trained weights: try more labelled images, more --minutes, or "
                       "--model colour=true where the text stands out by colour rather than brightness" if started else
                       "Try more labelled images, more --minutes, or --init a checkpoint trained on similar images"))
    last = history[-1]
    early = [h for h in history if h["step"] <= 0.75 * last["step"]]
    if early and best >= CHANCE and last["val_accuracy"] == best and best - max(h["val_accuracy"] for h in early) >= RISING:
        before = max(h["val_accuracy"] for h in early)
        said.append(f"validation was still rising when training stopped: {before:.1%} to {best:.1%} over the last "
                    f"quarter of the run. Train longer (more --minutes or --epochs), or continue with --init OUT")
    return said
