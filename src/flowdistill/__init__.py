"""FlowDistill: traffic-flow prediction distilled from a spatio-temporal LLM into a VIB-MLP."""

__version__ = "0.1.0"
