"""gunicorn settings: ``gunicorn -c python:citycredit.web.gunicorn_config citycredit.web.wsgi:app``.

Every log line is escaped by :class:`citycredit.web.pipeline.SafeFormatter` (a caller's ``%0a`` or
terminal escape cannot start or rewrite a line) and carries the request id: the app's records in
brackets, the access log as ``rid=`` from the ``X-Request-Id`` the app answered with.
"""

logger_class = "citycredit.web.pipeline.GunicornLogger"
access_log_format = (
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms rid=%({x-request-id}o)s'
)
# gunicorn ≥ 25.1 opens a control socket for `gunicornc` at one path per user ($XDG_RUNTIME_DIR or
# ~/.gunicorn/gunicorn.ctl): a second city on the machine (another demo, the federation's four
# servers, the tests) takes it over and stopping either removes it. Nothing here uses gunicornc, so
# none is opened; older gunicorn ignores the setting. Stop or reload with signals (systemd does).
control_socket_disable = True
