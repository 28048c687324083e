"""Prediction of whole volumes through bioimageio.core, tile by tile."""
