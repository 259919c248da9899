"""Predicting future frames from a clip with a trained model."""
