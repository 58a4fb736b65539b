"""One module per CLI command; shared options in `options.py`."""
