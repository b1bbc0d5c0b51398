"""The pod-state model with hand-made schedules: what each fault changes, exactly where and when."""

from __future__ import annotations

import numpy as np

from otlp_aiops.datasets.simulator import SimulatorConfig
from otlp_aiops.datasets.simulator.calltree import expand
from otlp_aiops.datasets.simulator.cluster import DETECT_S, HOG_SCALE, READY_S, ClusterState, simulate_cluster
from otlp_aiops.datasets.simulator.generate import build_model
from otlp_aiops.datasets.simulator.schedule import Disturbance, Incident, Schedule


def _cluster(incidents: list[Incident], disturbances: list[Disturbance] = ()) -> tuple[ClusterState, object]:
    cfg = SimulatorConfig.from_dict({"duration": "10m", "incidents": 0, "disturbances": 0, "instances": 1})
    topo, _ = build_model(cfg)
    trees = [expand(topo, j) for j in topo.journeys]
    expected = np.stack([t.expected_calls(len(topo.operations)) for t in trees])
    w = np.array([j.weight for j in topo.journeys])
    mean = cfg.request_rate * (w / w.sum()) @ expected
    call_rate = np.tile(mean, (cfg.seconds, 1))
    sched = Schedule(list(incidents), list(disturbances))
    return simulate_cluster(cfg, topo, sched, call_rate, mean, np.random.default_rng(0)), topo


def _inc(
    kind: str, service: str, start: int, end: int, severity: float = 0.8, op: str | None = None
) -> Incident:
    return Incident("inc-1", kind, service, 0, start, end, severity, None, op)


def test_no_fault_means_a_calm_cluster() -> None:
    cl, _ = _cluster([])
    assert (cl.inc_at >= 0).all() and cl.ready.all()
    assert (cl.op_fault == 0).all() and (cl.loss == 0).all() and (cl.net_delay_ms == 0).all()
    assert 0.15 < float(np.median(cl.util)) < 0.5  # services run at their target utilisation
    assert (cl.throttle == 0).mean() > 0.99


def test_cpu_hog_raises_only_its_pod() -> None:
    calm, topo = _cluster([])
    cl, _ = _cluster([_inc("cpu_hog", "currencyservice", 200, 300, severity=0.6)])
    slot = cl.slots_of[topo.service_index["currencyservice"]][0]
    limit = cl.slots[slot].cpu_limit
    np.testing.assert_allclose(cl.util[slot, 200:300] - calm.util[slot, 200:300], HOG_SCALE * 0.6, rtol=1e-5)
    assert (cl.cpu_usage[slot, 200:300] <= limit * 1.1).all()  # throttled at the limit (+ noise)
    assert (cl.lat_factor[slot, 200:300] > 5 * calm.lat_factor[slot, 200:300]).all()
    assert (cl.throttle[slot, 200:300] > 0.1).all()
    others = np.ones(len(cl.slots), bool)
    others[slot] = False
    np.testing.assert_array_equal(cl.util[others], calm.util[others])
    np.testing.assert_array_equal(cl.util[slot, :200], calm.util[slot, :200])
    np.testing.assert_array_equal(cl.util[slot, 300:], calm.util[slot, 300:])


def test_pod_kill_after_a_rolling_restart_labels_the_pod_it_killed() -> None:
    restart = Disturbance("dist-1", "deploy_restart", "cartservice", 100, 150, None)
    kill = _inc("pod_kill", "cartservice", 300, 400)
    cl, topo = _cluster([kill], [restart])
    slot = cl.slots_of[topo.service_index["cartservice"]][0]
    incs = [i for i in cl.incarnations if i.slot == slot]
    assert [i.end_reason for i in incs] == ["replaced", "killed", None]
    assert incs[1].pod != incs[0].pod and incs[2].pod == incs[1].pod  # a new pod, then the same pod restarted
    assert kill.pod == incs[1].pod
    delay = kill.params["restart_delay_s"]
    assert incs[2].start == 300 + delay and incs[2].restarts == 1
    si = topo.service_index["cartservice"]
    # crashed but still in the endpoints for DETECT_S seconds (requests are refused), then no endpoint
    assert (cl.route_count[si][300 : 300 + DETECT_S] == 1).all()
    assert not cl.ready[slot, 300 : 300 + DETECT_S].any()
    assert (cl.route_count[si][300 + DETECT_S : 300 + delay + READY_S] == 0).all()
    assert cl.ready[slot, 300 + delay + READY_S :].all()
    assert (cl.inc_at[slot, 300 : 300 + delay] == -1).all()


def test_memory_leak_grows_until_oom_and_the_restart_frees_it() -> None:
    cl, topo = _cluster([_inc("memory_leak", "adservice", 200, 320, severity=1.0)])
    slot = cl.slots_of[topo.service_index["adservice"]][0]
    limit = cl.slots[slot].mem_limit
    oom = [i for i in cl.incarnations if i.slot == slot and i.end_reason == "OOMKilled"]
    assert oom and cl.incarnations[0].restarts == 0
    t = oom[0].end
    assert 200 < t < 320 and cl.mem[slot, t - 1] > 0.9 * limit
    assert cl.mem[slot, t] == 0  # the container is gone
    restarted = next(i for i in cl.incarnations if i.slot == slot and i.start > t)
    assert cl.mem[slot, restarted.start] < 0.7 * limit
    assert np.diff(cl.mem[slot, 205:t]).mean() > 0


def test_network_and_code_faults_act_only_in_their_window() -> None:
    cl, topo = _cluster(
        [
            _inc("network_delay", "shippingservice", 100, 200, severity=0.5),
            _inc("packet_loss", "paymentservice", 250, 300, severity=0.5),
            _inc("code_exception", "cartservice", 350, 400, severity=0.5, op="cartservice:GetCart"),
            _inc("disk_io_slow", "redis-cart", 450, 500, severity=0.5),
        ]
    )
    ship = cl.slots_of[topo.service_index["shippingservice"]][0]
    pay = cl.slots_of[topo.service_index["paymentservice"]][0]
    redis = cl.slots_of[topo.service_index["redis-cart"]][0]
    assert cl.net_delay_ms[ship, 100:200].mean() > 100 and (cl.net_delay_ms[:, :100] == 0).all()
    assert list(np.nonzero(cl.net_delay_ms.any(axis=1))[0]) == [ship]
    assert (cl.loss[pay, 250:300] == np.float32(0.05 + 0.5 * 0.35)).all()
    assert list(cl.loss.sum(axis=1).nonzero()[0]) == [pay]
    op = topo.op_index["cartservice:GetCart"]
    assert (cl.op_fault[op, 350:400] == np.float32(0.5)).all() and cl.op_fault.sum() == np.float32(0.5) * 50
    assert (cl.io_factor[redis, 450:500] == np.float32(27.5)).all()
    assert (np.delete(cl.io_factor, redis, 0) == 1).all()
