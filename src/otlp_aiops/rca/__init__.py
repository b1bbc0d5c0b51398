"""Root-cause rankers behind one contract (:class:`otlp_aiops.rca.base.RootCauseRanker`)."""
