"""gunicorn settings for production: ``gunicorn -c deploy/gunicorn.conf.py idp.wsgi:app``.

Sync workers, several per core: a request spends part of its time waiting on PostgreSQL or
Redis, and a sync worker is the simplest model to reason about. Override on the command line
(``--workers``) to size a machine.
"""

import multiprocessing

bind = "127.0.0.1:8000"  # behind nginx; see deploy/nginx (UKey issue)
workers = multiprocessing.cpu_count() * 2
worker_class = "sync"
timeout = 30
graceful_timeout = 30
keepalive = 2
backlog = 2048
max_requests = 10000  # recycle workers now and then; jitter avoids recycling all at once
max_requests_jitter = 1000
accesslog = "-"
errorlog = "-"
# Never log query strings of /authorize and /token: they can carry codes and tokens.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms "%(a)s"'
forwarded_allow_ips = "127.0.0.2"  # nginx's proxy_bind address (deploy/nginx/idp.conf)
# nginx forwards the client certificate as a URL-encoded PEM header: allow for it.
limit_request_field_size = 16384
