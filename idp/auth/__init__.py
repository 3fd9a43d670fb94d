"""Authentication: the login state machine, phone + password + SMS, the SSO session."""
