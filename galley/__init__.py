"""Galley: a self-hosted VM image service that speaks the Azure Resource Manager API."""

__version__ = "0.1.0"
