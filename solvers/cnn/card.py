"""The training half of a CNN model card (Markdown): the exact command, the data, the seed, the
time-to-accuracy history. Evaluation figures are added by whoever measures them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from solvers.cnn.data import VAL_SEED_OFFSET


def model_card(meta: dict[str, Any], command: str) -> str:
    """The training half of a model card (markdown); evaluation figures are added by whoever measures them."""
    best = max(meta["history"], key=lambda h: h["val_accuracy"])
    rows = "\n".join(f"| {h['step']} | {h['seconds']:.0f} | {'-' if h['loss'] is None else format(h['loss'], '.3f')} | "
                     f"{h['val_accuracy']:.1%} |" for h in meta["history"])  # loss None: the check before step 1
    data = meta["data"]
    source = (f"data set `{data['dataset']}`" if data["dataset"] else f"preset `{meta['preset']}`, fresh items"
              if meta["preset"] else f"scheme `{data.get('scheme')}`, fresh items")
    held_out = "the data set's first 10 %" if data["dataset"] else f"validation drawn from seed + {VAL_SEED_OFFSET:,}"
    augmented = meta["train"].get("augment")
    folded = ("\n- Answers case-folded for training (the set is scored case-insensitive): the model writes "
              f"`{meta['charset']}`" if meta.get("folded") else "")
    folded += "\n- Augmentation: random affine, polarity and contrast per item" if augmented or (
        augmented is None and data["dataset"]) else ""
    if meta.get("lengths"):
        shortest, longest = meta["lengths"]
        span = f"{shortest}" if shortest == longest else f"{shortest}-{longest}"
        folded += (f"\n- Answers trained on: {span} characters; the solver keeps its answers to these lengths "
                   "(`-o fit_length=False` does not)")
    shape, chosen = data.get("image"), data.get("chosen")
    if shape:
        folded += f"\n- Images: median {shape[0]}x{shape[1]} pixels" + (f", scheme `{data['scheme']}`" if data.get("scheme") else "")
    if chosen:
        folded += f"\n- Chosen from the data, not given: {', '.join(f'`{k}`' for k in chosen)}"
    frozen = [h for h in meta["history"] if h.get("frozen")]
    if frozen and frozen[-1] is not meta["history"][-1]:
        folded += (f"\n- The trunk was frozen (its features computed once) to step {frozen[-1]['step']}, "
                   f"{frozen[-1]['seconds']:.0f} s; then every layer trained")
    elif frozen:
        folded += "\n- The trunk stayed frozen, as ddddocr ships it (its features computed once); the LSTM and head trained"
    stored, export = meta.get("compact") or {}, meta.get("export") or {}
    if stored:
        folded += (f"\n- Stored in {stored['dtype']}: the float16 copy read {stored['items']:,} validation items "
                   + ("exactly as the float32 model did" if not stored["differ"] else
                      f"otherwise in {stored['differ']}, so the weights stay float32"))
    if export:
        folded += (f"\n- Export check: ONNX Runtime {export['runtime']} read {export['items']:,} validation items "
                   + ("as PyTorch did" if not export["differ"] else f"otherwise in {export['differ']}: refused"))
    for line in meta.get("warnings") or ():
        folded += f"\n- **Warning:** {line}"
    mix = meta.get("mix")
    if mix:
        folded += (f"\n- Every batch also held {mix['per_batch']} items drawn from `{mix['dataset']}` (its first "
                   f"{mix['items']:,} items, data sha256 `{mix['sha256'][:16]}...`; {mix['share']:.0%} of each batch)")
    init = meta.get("init")
    if init and "ddddocr" in init:  # --init ddddocr
        folded += (f"\n- Started from ddddocr {init['ddddocr']}'s published recognizer, `{init['path']}` (sha256 "
                   f"`{init['sha256'][:16]}...`), its head cut to this charset; the checkpoint stores the tensors that "
                   "differ from it and refuses to load over another. ddddocr (by sml2h3) is under the MIT License, "
                   "\"Copyright © 2022 <copyright holders>\" as its LICENSE reads; the notice goes with any copy of "
                   "its weights")
        if init.get("fresh"):
            folded += f"; started from random weights: {', '.join(init['fresh'])}"
        folded += "\n"
    elif init:
        data0 = init["data"] or {}
        folded += (f"\n- Started from `{init['path']}` (sha256 `{init['sha256'][:16]}...`: {data0.get('train_items') or 0:,} "
                   f"items of seed {data0.get('seed', '?')}, best validation {init['val_accuracy']:.1%}; its own model card "
                   "tells how it was trained), not from random weights")
        w0, h0 = init.get("input") or [meta["config"]["width"], meta["config"]["height"]]
        if [w0, h0] != [meta["config"]["width"], meta["config"]["height"]]:
            folded += f"; those weights read {w0}x{h0} input, this model {meta['config']['width']}x{meta['config']['height']}"
        if init.get("fresh"):
            folded += (f"; its model was {init['config']}, so these started from random weights: "
                       f"{', '.join(f'`{k}`' for k in init['fresh'])}")
        folded += "\n"
    return f"""# CNN weights: {meta['preset'] or data['dataset'] or data.get('scheme')}

- Command: `{command}`
- Data: {source}, seed {data['seed']}: {data['train_items']:,} training items, {data['val_items']:,} validation items
  ({held_out}, never trained on); data sha256 `{data['sha256'][:16]}...`{folded}
- Model: {_model(meta['config'])}
- Hardware: {meta['hardware']}; versions: {meta['versions']}
- Best validation exact match: **{best['val_accuracy']:.1%}** at step {best['step']}, {best['seconds']:.0f} s of wall time
  (data rendering included)

## Time to accuracy

| step | wall s | loss | validation exact |
|---|---|---|---|
{rows}
"""


def write_card(out: Path, meta: dict[str, Any], command: str) -> str:
    """Write the model card beside the checkpoint `out`; return one line: the best validation and where both are."""
    out.with_suffix(".md").write_text(model_card(meta, command))
    best = max(meta["history"], key=lambda h: h["val_accuracy"])
    return (f"best validation exact match {best['val_accuracy']:.1%} at step {best['step']} "
            f"({best['seconds']:.0f} s); checkpoint {out}, model card {out.with_suffix('.md')}")


def _model(config: dict[str, Any]) -> dict[str, Any]:
    """The config as the card shows it: ddddocr's recognizer has its own layers, not CaptchaNet's channels and GRU."""
    if config.get("arch") == "ddddocr":
        return {k: v for k, v in config.items() if k not in ("channels", "hidden", "colour", "strided")}
    return config
