"""`python -m relying_parties.repair_fund [serve] [--port 8601] [--cert … --key …]`."""

from relying_parties.common.serve import main
from relying_parties.repair_fund import create_app

main(create_app, 8601)
