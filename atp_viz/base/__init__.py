"""What every layer stands on: the person-facing error, progress and Stop, registries, atomic writes, an LRU cache."""
