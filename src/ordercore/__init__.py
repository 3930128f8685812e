"""ordercore: an embeddable order management core."""
