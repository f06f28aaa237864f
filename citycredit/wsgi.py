"""WSGI entry point for gunicorn: ``gunicorn citycredit.wsgi:app``."""

from citycredit.app import create_app

app = create_app()
