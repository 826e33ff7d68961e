"""Adapters at the edges: Kafka, MongoDB (and later Ray). Domain code never imports these."""
