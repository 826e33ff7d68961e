"""The contributor web app: server-rendered pages over the gateway and the read API."""
