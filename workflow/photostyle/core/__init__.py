"""core: configuration machinery, the collection, atomic I/O, photos, provenance, device, weights (the lowest layer: imports nothing else of the package)."""
