"""Which identity an authorization carries (S09, D04).

An account may act for several organisations, in several roles, on a platform. For a client
of a platform the authorization carries exactly one of the account's active identities there:
the only one, or the one the person chose on the role-selection page. The choice is kept in
the SSO session per platform (so a second relying party of the same platform does not ask
again), and ``prompt=select_account`` (OIDC Core §3.1.2.1) asks again. An account without any
identity on the platform gets no code at all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import session

from idp.accounts.models import Account, Identity
from idp.oidc.models import Client

CHOICES_KEY = "identity_choice"


@dataclass(frozen=True)
class Selection:
    identity_id: int | None  # what the tokens carry (None: the client has no platform)
    missing: bool = False  # the account has no active identity on the client's platform
    choose: bool = False  # the person must choose first (S09)


def select(account: Account, client: Client, prompts: set[str],
           started_at: float) -> Selection:
    if not client.platform:  # not a platform's relying party: no organisation claims
        return Selection(None)
    candidates = account.identities_for(client.platform)
    if not candidates:
        return Selection(None, missing=True)
    ask_again = "select_account" in prompts
    choice = session.get(CHOICES_KEY, {}).get(client.platform)
    if isinstance(choice, dict) and (not ask_again or float(choice.get("t", 0)) >= started_at):
        chosen = next((i for i in candidates if i.id == choice.get("id")), None)
        if chosen is not None:
            return Selection(chosen.id)
    if len(candidates) == 1 and not ask_again:
        return Selection(candidates[0].id)
    return Selection(None, choose=True)


def remember(identity: Identity) -> None:
    choices = dict(session.get(CHOICES_KEY, {}))
    choices[identity.platform] = {"id": identity.id, "t": time.time()}
    session[CHOICES_KEY] = choices


def candidate(account: Account, platform: str, raw_id: str) -> Identity | None:
    """The account's own active identity ``raw_id`` on ``platform``, or None (anything else
    posted — another account's identity, another platform's, a disabled one — names nothing)."""
    text = (raw_id or "").strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 10):
        return None
    return next((i for i in account.identities_for(platform) if i.id == int(text)), None)
