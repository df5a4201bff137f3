"""Privacy requests: erasure (`forget`), subject access, suppression of erased people."""
