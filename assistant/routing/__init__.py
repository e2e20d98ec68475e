"""Routing: the intent router, its text classifier and its training."""
