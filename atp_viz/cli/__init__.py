"""The command line: ``python -m atp_viz`` and its commands, the benchmark among them (no gradio)."""
