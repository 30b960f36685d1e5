"""photostyle: photographic style transfer for large photo collections.

The algorithms live here as plain, importable functions; the Snakemake rules in
``workflow/rules`` only wire files to the ``photostyle`` command line (``cli.py``).
"""

__version__ = "0.1.0"
