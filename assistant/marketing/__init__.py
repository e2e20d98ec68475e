"""Marketing: copy drafting, channels, the compliance checker and its evaluation."""
