"""Data layer: loading and validating inputs, trip aggregation, windows, splits, scalers, graphs."""

from flowdistill.data.dataset import FlowDataset
from flowdistill.data.errors import DataError
from flowdistill.data.graph import nearest_regions
from flowdistill.data.sources import load_dataset, resolve_data_dir
from flowdistill.data.windows import WindowAligned, WindowConfig, Windows, split_bounds

__all__ = [
    "DataError",
    "FlowDataset",
    "WindowAligned",
    "WindowConfig",
    "Windows",
    "load_dataset",
    "nearest_regions",
    "resolve_data_dir",
    "split_bounds",
]
