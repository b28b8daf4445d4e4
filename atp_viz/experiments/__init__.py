"""Runs asked in turn to answer a question: β search, comparison, order of rates, zero-shot, generation, atlas."""
