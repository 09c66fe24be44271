"""Differential-diagnosis ranking over the knowledge base, and the diagnosis matcher."""
