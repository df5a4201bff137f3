"""ccv: one record per customer, built from every place the customer leaves data."""

__version__ = "0.1.0"
