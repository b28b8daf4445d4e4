"""A loaded causal LM (dense, or with a run's pruned weights) as an ONNX graph: token ids and
an all-ones attention mask in, logits out, no key/value cache, any sequence length.

The graph is what onnxruntime and DeepSparse time. It is made by torch's TorchScript exporter
(``torch.onnx.export(dynamo=False)``): the dynamo exporter needs a newer onnx than DeepSparse
1.8 reads, and this path needs none of onnxscript. transformers 5 builds its causal mask from
the attention mask it is given, so the graph takes one explicitly.
"""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

from ..base.errors import AtpError
from ..model.loading import LoadedModel
from ..model.weights import PrunedWeights, swapped_weights

OPSET = 17
INPUTS = ("input_ids", "attention_mask")
MISSING = ("the ONNX runtimes are an optional extra: pip install 'atp-viz[runtimes]' "
           "(or: pip install onnx onnxruntime)")


class LogitsOnly(nn.Module):
    """The model as a plain function of (ids, mask) → logits, without a cache."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits


def require_onnx() -> None:
    """Refuse in one sentence when the optional extra is not installed."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise AtpError(MISSING) from None


def check_exportable(loaded: LoadedModel) -> None:
    if loaded.device.type != "cpu" or loaded.dtype != torch.float32:
        raise AtpError(f"the ONNX runtimes are measured on the CPU in float32; this model is "
                       f"{str(loaded.dtype).removeprefix('torch.')} on {loaded.device.type}: use --device cpu "
                       "--dtype float32")


def export_logits_graph(loaded: LoadedModel, path: Path, pruned: PrunedWeights | None = None,
                        trace_tokens: int = 16) -> Path:
    """Write the model (with ``pruned`` swapped in, if given) to ``path`` as an ONNX graph whose
    sequence length is free; traced on ``trace_tokens`` tokens."""
    require_onnx()
    check_exportable(loaded)
    ids = torch.zeros(1, trace_tokens, dtype=torch.long)
    free = {name: {1: "tokens"} for name in (*INPUTS, "logits")}
    with loaded.lock, (swapped_weights(loaded.model, pruned) if pruned else nullcontext()), torch.no_grad():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python branches it fixed
            torch.onnx.export(LogitsOnly(loaded.model), (ids, torch.ones_like(ids)), str(path), dynamo=False,
                              input_names=list(INPUTS), output_names=["logits"], dynamic_axes=free,
                              opset_version=OPSET)
    return path


def repeated_concats(path: Path) -> list[str]:
    """Concat nodes of one tensor three or more times (``torch.cat([x, x, x])``): DeepSparse 1.8's
    compiler stopped on an assertion (in graph.cpp) at such a node. Twice (the rotary embedding's
    ``cat((freqs, freqs))``) compiles."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [node.name for node in graph.node if node.op_type == "Concat" and len(node.input) >= 3
            and len(set(node.input)) == 1]
