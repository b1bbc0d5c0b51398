"""Datasets: the fault-injection simulator, adapters for public failure datasets, the registry."""
