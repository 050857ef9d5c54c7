"""Content layer: disk image formats and the chunk store."""
