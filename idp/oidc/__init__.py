"""OpenID Connect provider: discovery, keys, grants, token endpoints, logout."""
