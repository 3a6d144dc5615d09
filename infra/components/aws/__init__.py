"""The AWS billing cell, one ComponentResource per concern."""
