"""WSGI entry: `gunicorn relying_parties.supervision.wsgi:app`."""

from relying_parties.supervision import create_app

app = create_app()
