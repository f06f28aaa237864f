"""WSGI entry point for gunicorn: ``gunicorn citycredit.web.wsgi:app``."""

from citycredit.web.app import create_app

app = create_app()
