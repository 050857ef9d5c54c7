"""Durable work claimed from the database: it survives restarts and runs in any worker process."""
