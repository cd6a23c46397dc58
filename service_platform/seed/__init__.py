"""Demo data (YAML) and its loader."""
