"""Pure numbers, no torch: schedules, the competing allocators' formulas, the noise rule, rates read from text."""
