"""After login: the platform the person enters and, with several identities, the role (S09,
S18, D04). The choice is what the tokens carry (``org``, ``platform``, ``roles``, ``identity``)."""
