"""Evaluation of the model and its baselines on any folder laid out like the dev data."""
