"""Runs asked in turn to answer a question: a pair, β search, comparison, orders, zero-shot, generation, atlas."""
