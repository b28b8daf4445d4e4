"""One pruning run and what keeps it: settings, allocators, the engine, time estimates, stored results, the atlas."""
