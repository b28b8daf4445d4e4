"""Figures and text for the Gradio app (the only part of atp_viz that may import gradio)."""
