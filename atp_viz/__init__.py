"""atp_viz: layer-wise sparsity by arithmetic progression (ATP), measured and visualised.

Sub-packages in layers, lowest first: base, math, records, model, compress, runs,
experiments | runtimes, figures, serve, cli | ui. A module imports only its own layer and
lower ones, and only ``atp_viz.ui`` imports gradio (docs/engine.md, tests/test_layers.py).
"""

__version__ = "0.1.0"
