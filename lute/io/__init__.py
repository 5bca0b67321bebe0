"""Config parsing and substitution, per-Task parameter models, and the results DB."""
