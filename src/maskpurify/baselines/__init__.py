"""Earlier ways of crossing the synthetic-to-real gap, run side by side with the purifier."""
