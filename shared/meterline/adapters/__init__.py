"""Adapters of the store and publisher ports."""
