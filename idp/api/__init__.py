"""Machine interfaces for tenants: the admin REST API and SCIM 2.0."""
