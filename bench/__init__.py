"""Benchmarks: codec micro-benchmarks and load scenarios against Roost and Mosquitto."""
