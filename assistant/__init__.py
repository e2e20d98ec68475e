"""Meadow assistant: customer service and marketing for consumer-finance lenders."""

__version__ = "0.1.0"
