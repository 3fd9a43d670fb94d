"""The platform admin console (the team that runs the provider)."""
