"""The published ATP code against atp_viz on the same tokens:
``PYTHONPATH=. python tests/official_atp.py --official DIR --method wanda --sparsity 0.7 --beta 0.012 --shuffles 3``.

DIR holds wzhuang-xmu/ATP's ``lib/prune.py``, ``lib/layerwrapper.py`` and ``lib/sparsegpt.py``,
patched only to run here (docs/noise.md says how), and ``rates.py``: the per-block rates of its
``main.py``. The script loads the embedded model once, draws atp_viz's own calibration windows
and report windows exactly as ``engine.run_pruning`` does, and prunes with each side asked for:

- ``official``: the published ``prune_wanda`` / ``prune_sparsegpt`` fed the windows in order;
- ``reversed``: the same code fed the same windows in reverse order (identical math, only the
  order of float accumulation changes);
- ``atp_viz``: ``engine.run_pruning`` at the same settings;
- with ``--shuffles K``, also ``shuffled1`` … ``shuffledK``: the published code fed the same
  windows in K seeded random orders, for a spread of the float-order effect wider than two runs.

Every side's perplexity comes from one loop, ``atp_viz.model.perplexity.perplexity``, on the same
report windows; each pair of sides gets its mask agreement (overall, worst layer, first block
that differs). The published code writes into the model; the dense weights go back after each
of its runs. The script prints one JSON object; the figures go into docs/noise.md, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
import time
from itertools import combinations
from pathlib import Path
from types import SimpleNamespace

import torch
import transformers

from atp_viz.model.loading import cpu_name, eval_autocast, load_model
from atp_viz.model.perplexity import perplexity
from atp_viz.model.texts import calibration_set
from atp_viz.model.weights import swapped_weights
from atp_viz.runs.engine import evaluation_set, run_pruning
from atp_viz.runs.settings import RunSettings, validate

SIDES = ("official", "reversed", "atp_viz")
Masks = dict[str, torch.Tensor]  # dotted layer name -> bool, True where the weight is 0


def official_modules(folder: Path) -> tuple[object, object]:
    """The published ``lib.prune`` and the rates of its ``main.py``, imported from ``folder``."""
    if not (folder / "lib" / "prune.py").is_file() or not (folder / "rates.py").is_file():
        raise SystemExit(f"error: {folder} has no lib/prune.py and rates.py (see docs/noise.md)")
    sys.path.insert(0, str(folder))
    return importlib.import_module("lib.prune"), importlib.import_module("rates")


def window_order(windows: torch.Tensor, side: str) -> torch.Tensor:
    """The calibration windows in the order ``side`` feeds them: as drawn, reversed, or shuffled by seed k."""
    if side == "official":
        return windows
    if side == "reversed":
        return windows.flip(0)
    seed = int(side.removeprefix("shuffled"))
    return windows[torch.randperm(windows.shape[0], generator=torch.Generator().manual_seed(seed))]


def zero_masks(model: torch.nn.Module, names: list[str]) -> Masks:
    return {name: model.get_submodule(name).weight.detach() == 0 for name in names}


def dense_weights(prune, loaded) -> dict[str, torch.Tensor]:
    """The weights the published code prunes (its ``find_layers`` of every block), copied."""
    return {f"{loaded.blocks_path}.{i}.{name}": layer.weight.detach().clone()
            for i, block in enumerate(loaded.blocks) for name, layer in prune.find_layers(block).items()}


def run_official(prune, loaded, windows: torch.Tensor, method: str, rates: list[float], names: list[str]) -> Masks:
    """Prune the loaded model in place with the published code; return its zeros."""
    model = loaded.model
    # What the published get_llm sets: the window length, and no multi-device map.
    model.seqlen = windows.shape[1]
    model.hf_device_map = {}
    args = SimpleNamespace(nsamples=windows.shape[0], seed=0, use_variant=False,
                           dataloader=[(w.unsqueeze(0), None) for w in windows])
    prune_fn = {"wanda": prune.prune_wanda, "sparsegpt": prune.prune_sparsegpt}[method]
    # Its progress lines go to stderr: stdout carries the JSON.
    with contextlib.redirect_stdout(sys.stderr):
        prune_fn(args, model, loaded.tokenizer, torch.device("cpu"), sparsity_rates=rates)
    return zero_masks(model, names)


def restore(model: torch.nn.Module, dense: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, weight in dense.items():
            model.get_submodule(name).weight.data.copy_(weight)


def agreement(a: Masks, b: Masks, blocks_path: str) -> dict:
    """How many weights the two masks treat alike: overall, per worst layer, first block that differs."""
    equal = total = 0
    worst_name, worst = None, 1.0
    first_block = None
    for name, mask in a.items():
        same = int((mask == b[name]).sum())
        equal, total = equal + same, total + mask.numel()
        if same / mask.numel() < worst:
            worst_name, worst = name, same / mask.numel()
        if same < mask.numel():
            block = int(name.removeprefix(blocks_path + ".").split(".")[0])
            first_block = block if first_block is None else min(first_block, block)
    return {"equal_fraction": equal / total, "differing_weights": total - equal, "weights": total,
            "worst_layer": worst_name, "worst_layer_equal_fraction": worst, "first_block_differing": first_block}


def block_sparsity(masks: Masks, blocks_path: str, num_layers: int) -> list[float]:
    zeros, total = [0] * num_layers, [0] * num_layers
    for name, mask in masks.items():
        block = int(name.removeprefix(blocks_path + ".").split(".")[0])
        zeros[block] += int(mask.sum())
        total[block] += mask.numel()
    return [z / t for z, t in zip(zeros, total)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=Path, required=True, help="folder with the patched published code")
    parser.add_argument("--method", choices=("wanda", "sparsegpt"), default="wanda")
    parser.add_argument("--sparsity", type=float, default=0.7)
    parser.add_argument("--beta", type=float, default=0.012)
    parser.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated, of {', '.join(SIDES)}")
    parser.add_argument("--shuffles", type=int, default=0, help="extra runs of the published code, windows shuffled")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if not sides or any(s not in SIDES for s in sides):
        raise SystemExit(f"error: --sides takes {', '.join(SIDES)}, got {args.sides!r}")
    sides += [f"shuffled{k}" for k in range(1, args.shuffles + 1)]
    torch.set_num_threads(args.threads)
    prune, rates_module = official_modules(args.official)

    settings = validate(RunSettings(method=args.method, sparsity=args.sparsity, allocation="atp", beta=args.beta))
    loaded = load_model(settings.model, settings.device, settings.dtype)
    # The engine's own windows: calibration_set as in engine.calibration, the report windows by evaluation_set.
    calib = calibration_set(loaded.tokenizer, settings.calibration_source, settings.calib_samples,
                            settings.calib_seqlen, settings.seed)
    report = evaluation_set(loaded, settings)
    autocast = eval_autocast(settings.dtype, loaded.device)
    official_rates = rates_module.sparsity_rates(loaded.num_layers, args.sparsity, args.beta)

    t = time.perf_counter()
    out: dict = {
        "model": settings.model, "num_layers": loaded.num_layers, "method": args.method,
        "sparsity": args.sparsity, "beta": args.beta, "calibration": [settings.calib_samples, settings.calib_seqlen],
        "report": list(report.shape), "seed": settings.seed, "threads": args.threads, "cpu": cpu_name(),
        "eval_autocast": str(autocast) if autocast is not None else "none (float32)",
        "torch": torch.__version__, "transformers": transformers.__version__,
        "official_commit": (args.official / "COMMIT").read_text().strip() if (args.official / "COMMIT").exists()
        else None,
        "dense_ppl": perplexity(loaded.model, report, None, autocast), "sides": {}, "agreement": {},
    }
    out["dense_seconds"] = time.perf_counter() - t
    masks: dict[str, Masks] = {}
    for side in sides:
        t = time.perf_counter()
        if side == "atp_viz":
            outcome = run_pruning(settings, keep_weights=True)
            pruned = outcome.pruned
            masks[side] = {name: layer.zeroed if layer.zeroed is not None else layer.weight == 0
                           for name, layer in pruned.items()}
            with swapped_weights(loaded.model, pruned):
                ppl = perplexity(loaded.model, report, None, autocast)
            extra = {"engine_ppl": outcome.result.ppl,
                     "schedule_max_difference_from_official": max(
                         abs(a - b) for a, b in zip(outcome.result.schedule, official_rates))}
            del pruned, outcome
        else:
            windows = window_order(calib, side)
            dense = dense_weights(prune, loaded)
            try:
                masks[side] = run_official(prune, loaded, windows, args.method, official_rates, list(dense))
                ppl = perplexity(loaded.model, report, None, autocast)
            finally:
                restore(loaded.model, dense)
            extra = {}
        out["sides"][side] = {"ppl": ppl, "seconds": time.perf_counter() - t, **extra,
                              "block_sparsity": block_sparsity(masks[side], loaded.blocks_path, loaded.num_layers)}
        print(f"{side}: perplexity {ppl:.2f} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    runs = [out["sides"][side]["ppl"] for side in sides if side != "atp_viz"]
    if runs:
        out["official_code_ppl"] = {"runs": len(runs), "min": min(runs), "max": max(runs)}
    for a, b in combinations(sides, 2):
        out["agreement"][f"{a} vs {b}"] = agreement(masks[a], masks[b], loaded.blocks_path)
    text = json.dumps(out, indent=1)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
