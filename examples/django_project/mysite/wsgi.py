"""WSGI entry point: the Django middleware records requests by itself (no MCP, no streams
measured to the last byte written; see docs/django.md)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
application = get_wsgi_application()
