"""What every layer stands on: the person-facing error, progress and Stop, name registries, atomic folder writes."""
