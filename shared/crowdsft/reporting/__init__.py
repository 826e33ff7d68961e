"""Writing simulation results: CSV/JSON files and matplotlib plots (Agg backend)."""
