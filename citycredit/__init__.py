"""The city credit platform's own floors: ``core`` (ground), and the shells ``web`` and ``cli``.

Importing this package loads nothing: the ground never pulls in Flask, and a domain importing
``citycredit.core`` must not pay for the web app (see docs/ARCHITECTURE.md, "Layers").
"""
