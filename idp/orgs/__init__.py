"""Organisations: enterprises, their management offices, owners' committees, centres."""
