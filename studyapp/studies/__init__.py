"""Study design: comparisons, pairs, gold and attention checks, the planner, publishing and versions."""
