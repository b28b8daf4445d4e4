"""A causal LM as the engine sees it: loading, decoder blocks, calling one block, texts, perplexity, swapped weights."""
