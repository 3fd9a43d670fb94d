"""`python -m relying_parties.supervision [serve] [--port 8602] [--cert … --key …]`."""

from relying_parties.common.serve import main
from relying_parties.supervision import create_app

main(create_app, 8602)
