"""Extensions, created unbound and attached to an app with ``init_app`` in the factory."""

from __future__ import annotations

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from idp.db import Base

# expire_on_commit=False: a request commits in the middle (a code is consumed before tokens are
# issued) and goes on reading the same rows; reloading them all after each commit would cost a
# query apiece for nothing, since a request's view of its own rows does not go stale in a
# few milliseconds.
db = SQLAlchemy(metadata=Base.metadata, session_options={"expire_on_commit": False})
migrate = Migrate()
csrf = CSRFProtect()
