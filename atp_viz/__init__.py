"""atp_viz: layer-wise sparsity by arithmetic progression (ATP), measured and visualised.

The engine (everything in this package except ``atp_viz.ui``) never imports gradio.
"""

__version__ = "0.1.0"
