"""Image template runs: the build worker's handler (run.py) and what it is made of."""
