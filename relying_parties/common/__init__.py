"""What the two demo relying parties share (OIDC client set-up, provisioning, logout)."""
