"""A tiny Django project for tests/django/ (configured in-process by that module)."""
