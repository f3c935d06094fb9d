"""Using a trained model: forecast from timestamps or trip records, export to ONNX, serve over HTTP.

Sits above the engine and the models (it rebuilds a run's model from its folder) and below the CLI.
"""

from flowdistill.serving.forecaster import Forecast, Forecaster

__all__ = ["Forecast", "Forecaster"]
