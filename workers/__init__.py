"""Celery workers for tipline."""
