"""The OTLP resource of every simulated pod (service, Kubernetes and SDK attributes), shared by the
span / log emitter (:mod:`.emit`) and the metric exporter (:mod:`.metrics`)."""

from __future__ import annotations

from opentelemetry.proto.resource.v1 import resource_pb2

from otlp_aiops.datasets.simulator.cluster import ClusterState
from otlp_aiops.datasets.simulator.topology import Topology
from otlp_aiops.otlp.write import kv

SDK_LANGUAGE = {"go": "go", "java": "java", "dotnet": "dotnet", "nodejs": "nodejs", "python": "python"}
SDK_VERSION = {"go": "1.35.0", "java": "1.47.0", "dotnet": "1.11.2", "nodejs": "1.30.1", "python": "1.31.0"}


def resource_proto(topo: Topology, cl: ClusterState, r: int) -> resource_pb2.Resource:
    pr = cl.resources[r]
    svc = topo.services[pr.service]
    attrs = [
        ("service.name", svc.name),
        ("service.namespace", topo.namespace),
        ("service.version", pr.version),
        ("service.instance.id", pr.pod),
        ("k8s.namespace.name", topo.namespace),
        ("k8s.pod.name", pr.pod),
        ("k8s.statefulset.name" if not svc.instrumented else "k8s.deployment.name", svc.name),
        ("k8s.container.name", svc.name if svc.instrumented else svc.runtime),
        ("k8s.node.name", pr.node),
        ("host.name", pr.pod),
        ("deployment.environment.name", "simulation"),
    ]
    if svc.instrumented:
        attrs += [
            ("telemetry.sdk.name", "opentelemetry"),
            ("telemetry.sdk.language", SDK_LANGUAGE[svc.runtime]),
            ("telemetry.sdk.version", SDK_VERSION[svc.runtime]),
        ]
    return resource_pb2.Resource(attributes=[kv(k, v) for k, v in attrs])
