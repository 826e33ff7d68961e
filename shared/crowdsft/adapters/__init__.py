"""Adapters at the edges: Kafka, MongoDB, Ray and the artifact store. The domain never
imports these."""
