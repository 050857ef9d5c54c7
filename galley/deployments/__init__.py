"""Microsoft.Resources/deployments: ARM templates evaluated and applied through Galley's own API."""
