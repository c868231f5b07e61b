"""A tiny Django project for tests/test_django.py (configured in-process by that module)."""
