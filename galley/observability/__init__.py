"""What an operator watches: health, Prometheus metrics, structured logs, and the nodes."""
