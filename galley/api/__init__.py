"""HTTP in ARM's shape: routing, api-versions, request/response bodies, async operations."""
