"""Core plumbing shared by every domain: configuration, database, CLI, scheduler, web app."""

from citycredit.app import create_app

__all__ = ["create_app"]
