"""The WSGI app with its rate limiter switched off, for bench/tokens.py only.

A load test sends hundreds of requests a second from one client and one address; with the limiter on
they would measure the limit, not what a request costs. bench/tokens.py serves this next to the real
app (``citycredit.web.wsgi:app``) to measure what the limiter itself costs.
"""

from citycredit.web.wsgi import app

# Flask-Limiter registers each of its instances under app.extensions["limiter"].
for limiter in app.extensions.get("limiter", ()):
    limiter.enabled = False
