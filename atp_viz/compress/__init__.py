"""What is removed and rounded: pruners, quantizers, propagation, allocator measurements, EvoPress, recipes."""
