"""Marketing activation: consented, capped, logged exports of customer_360 segments."""

from ccv.activation.export import ExportError, ExportResult, export_segment
from ccv.activation.filters import FilterRejected, validate_filter
from ccv.activation.settings import Activation
from ccv.config import ActivationConfig

__all__ = [
    "Activation",
    "ActivationConfig",
    "ExportError",
    "ExportResult",
    "FilterRejected",
    "export_segment",
    "validate_filter",
]
