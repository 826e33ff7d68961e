"""HTTP gateway: authenticated, rate-limited feedback submission to Kafka."""
