"""SparseGPT's own sweep settings (and GPTQ's, which shares its sweep), as plain numbers.

Kept apart from the torch code that uses them so that the settings can check an N:M
pattern against the block width without importing torch; the llm-compressor recipe names
them from here too.
"""

# 128-column blocks, damping 1% of the mean Hessian diagonal.
OBS_BLOCK = 128
OBS_DAMPING = 0.01
