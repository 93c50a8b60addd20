"""Roost as one node of a cluster joined through NATS (docs/clustering.md).

Loaded only when the configuration has a ``[cluster]`` section: ``Broker.start``
imports it then, and a broker without one never does (nor needs ``nats-py``). The
cluster knows the broker through the router's ``Peers`` seam and ``BrokerCore``; the
broker knows nothing of it beyond that one import.
"""

from roost.cluster.node import ClusterNode

__all__ = ["ClusterNode"]
