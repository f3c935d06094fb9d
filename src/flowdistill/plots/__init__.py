"""PNG plots of trained runs: learning curves, forecast against truth, error maps."""
