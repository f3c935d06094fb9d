"""The FlowDistill student (VIB-MLP)."""
