"""medarena: train and compare medical language models."""

__version__ = "0.1.0"
