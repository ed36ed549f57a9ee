"""Quantized copies of registered weights: exporters users run to make their own, and that the
tests use to build quantized copies of the embedded tiny model offline."""
