"""WSGI entry: `gunicorn relying_parties.repair_fund.wsgi:app`."""

from relying_parties.repair_fund import create_app

app = create_app()
