"""Evaluation: the cold/warm protocol (split), the recommender interface, baselines, metrics,
tuning and the report. ``jobs/evaluate.py`` runs it; see that job's docstring."""
