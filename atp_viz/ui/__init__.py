"""The Gradio app: its tabs, their events and the state they share (the only part of atp_viz that may import gradio)."""
