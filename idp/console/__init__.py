"""Consoles on the provider: the district centre's review console (T02, T04, T07, T08); the
tenant console of enterprises comes with the tenant-console issue."""
