"""Accounts (who logs in) and identities (account × organisation × role × platform)."""
