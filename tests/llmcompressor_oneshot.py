"""Run inside llm-compressor's own virtual environment (it pins its own transformers):
prune a saved model with llm-compressor's ``oneshot`` and a recipe, then report the
sparsity each decoder layer reached (and the output layer's zeros), read from the
returned model's weights.

Usage: python llmcompressor_oneshot.py MODEL_DIR RECIPE TEXT_FILE LAYER_CLASS OUT_JSON
"""

from __future__ import annotations

import json
import sys

import torch
from datasets import Dataset
from llmcompressor import oneshot
from transformers import AutoModelForCausalLM, AutoTokenizer

SAMPLES, SEQLEN = 8, 64


def calibration(tokenizer, text: str) -> Dataset:
    """SAMPLES windows of SEQLEN tokens cut from ``text``: all oneshot needs, offline."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    step = (len(ids) - SEQLEN) // SAMPLES
    rows = [ids[i * step: i * step + SEQLEN] for i in range(SAMPLES)]
    return Dataset.from_dict({"input_ids": rows, "attention_mask": [[1] * SEQLEN for _ in rows]})


def layer_sparsity(model, layer_class: str) -> list[float]:
    """Zeros over weights of each decoder layer's linear layers, in model order."""
    rates = []
    for module in model.modules():
        if type(module).__name__ == layer_class:
            linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
            zeros = sum(int((m.weight == 0).sum()) for m in linears)
            rates.append(zeros / sum(m.weight.numel() for m in linears))
    return rates


def main(model_dir: str, recipe: str, text_file: str, layer_class: str, out: str) -> None:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with open(text_file, encoding="utf-8") as handle:
        dataset = calibration(tokenizer, handle.read())
    pruned = oneshot(model=model, tokenizer=tokenizer, dataset=dataset, recipe=recipe,
                     num_calibration_samples=SAMPLES, max_seq_length=SEQLEN)
    with open(out, "w", encoding="utf-8") as handle:
        head = pruned.get_output_embeddings().weight
        json.dump({"sparsity": layer_sparsity(pruned, layer_class),
                   "lm_head_zeros": float((head == 0).float().mean())}, handle)


if __name__ == "__main__":
    main(*sys.argv[1:])
