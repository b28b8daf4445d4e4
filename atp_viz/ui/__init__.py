"""The Gradio app: its tabs, figures and words (the only part of atp_viz that may import gradio)."""
