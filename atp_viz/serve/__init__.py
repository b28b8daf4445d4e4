"""A shared server's rules without gradio: the line of engine jobs, the warm start, what a public client may ask."""
