"""Plotly figures and the words written with them, no gradio: results in, figures and sentences out (UI, CLI, bench)."""
