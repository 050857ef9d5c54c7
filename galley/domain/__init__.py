"""Resources and their rules: plain Python, no I/O, no HTTP."""
