"""Complaints: classifier (product, issue, severity) and the deadline rules."""
