"""The world's parts in isolation: distributions, streams, network, participants, crashes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.runner import Model
from sim.scenario import scenario_from_dict
from sim.world import distributions as d
from sim.world import messages
from sim.world.core import World
from sim.world.effects import COMPENSATE, FORWARD
from sim.world.network import Network
from sim.world.node import Node
from sim.world.rng import Streams
from sim.world.timers import DeadlineQueue

from conftest import order_scenario

# ------------------------------------------------------------------ distributions

DISTS = [
    d.Constant(0.25),
    d.Exponential(0.02),
    d.Uniform(0.01, 0.03),
    d.LogNormal(0.01, 0.05),
    d.Empirical([0.1, 0.2, 0.2, 0.7]),
]


@pytest.mark.parametrize("dist", DISTS, ids=lambda x: x.kind)
def test_sample_moments_match_mean_and_variance(dist: d.Distribution) -> None:
    n = 200_000
    draws = dist.draw(np.random.default_rng(7), n)
    # The sample mean has standard error sqrt(var / n); 5 of them is a
    # 1-in-3.5-million false alarm for a normal mean (the CLT holds well at
    # n = 200k even for the lognormal's skew, sigma = 0.69 here).
    se = math.sqrt(dist.variance / n)
    assert abs(draws.mean() - dist.mean) <= 5 * se + 1e-12
    # The sample variance: a 5% band is > 10 standard errors for these shapes
    # (its relative s.e. is sqrt((kurtosis - 1) / n) < 0.5% except the
    # lognormal's ~1.5%).
    assert draws.var() == pytest.approx(dist.variance, rel=0.05, abs=1e-15)
    assert (draws >= 0).all()


def test_lognormal_is_spelled_by_median_and_p99() -> None:
    dist = d.LogNormal(0.01, 0.05)
    draws = dist.draw(np.random.default_rng(3), 400_000)
    assert np.median(draws) == pytest.approx(0.01, rel=0.01)
    assert np.percentile(draws, 99) == pytest.approx(0.05, rel=0.03)


def test_batched_sampler_gives_the_same_draws_as_one_big_draw() -> None:
    dist = d.Exponential(1.0)
    sampler = dist.sampler(np.random.default_rng(11))
    batched = [sampler() for _ in range(3 * d.BATCH + 5)]
    direct = np.random.default_rng(11)
    expected = np.concatenate([dist.draw(direct, d.BATCH) for _ in range(4)])[: len(batched)]
    assert batched == expected.tolist()


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("constant", {"value": -1.0}, "value must be >= 0"),
        ("exponential", {"mean": 0.0}, "mean must be > 0"),
        ("uniform", {"low": 0.2, "high": 0.1}, "high must be > low"),
        ("lognormal", {"median": 0.1, "p99": 0.05}, "p99 must be > median"),
        ("empirical", {"samples": []}, "must not be empty"),
        ("exponential", {"mean": float("inf")}, "must be finite"),
        ("gamma", {}, "unknown dist"),
    ],
)
def test_bad_distributions_are_refused(kind: str, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        d.make(kind, **params)


# ------------------------------------------------------------------ streams


def test_streams_depend_on_name_and_seed_not_on_order() -> None:
    a, b = Streams(5), Streams(5)
    first = a.generator("x").random(4)
    a.generator("y").random(4)
    b.generator("y").random(4)
    b.generator("z")
    assert (b.generator("x").random(4) == first).all()
    assert not (Streams(6).generator("x").random(4) == first).all()
    assert not (Streams(5).generator("y").random(4) == first).all()


def test_a_stream_name_can_be_taken_only_once() -> None:
    streams = Streams(1)
    streams.generator("participant.payment.service")
    with pytest.raises(ValueError, match="already taken"):
        streams.generator("participant.payment.service")


# ------------------------------------------------------------------ network


class Sink(Node):
    def __init__(self, world: World, name: str) -> None:
        super().__init__(world, name)
        self.got: list[tuple[float, tuple]] = []

    def handle(self, msg: tuple) -> None:
        self.got.append((self.world.now, msg))


def make_network(**spec: object) -> tuple[World, Network, Sink, Sink]:
    scenario = order_scenario({f"network.{k}": v for k, v in spec.items()})
    world = World(seed=3)
    network = Network(world, scenario.network)
    a, b = Sink(world, "orchestrator"), Sink(world, "payment")
    network.attach(a)
    network.attach(b)
    return world, network, a, b


def test_run_fires_calls_in_time_then_scheduling_order_and_stops_before_until() -> None:
    """SimPy's order: time, then the order of scheduling; ``run(until)`` stops
    before anything due at ``until`` itself (SimPy's urgent stop event) and
    leaves the clock there; the next run goes on from it."""
    world = World(1)
    fired: list[tuple[float, str]] = []

    def note(label: str) -> None:
        fired.append((world.now, label))
        if label == "a":
            world.at(0.0, note, "a-now")  # same instant, scheduled later: after "b"

    world.at(0.5, note, "b2")
    world.at(0.25, note, "a")
    world.at(0.25, note, "b")
    world.at(1.0, note, "at-until")
    world.run(until=1.0)
    assert fired == [(0.25, "a"), (0.25, "b"), (0.25, "a-now"), (0.5, "b2")]
    assert world.now == 1.0
    world.run(until=2.0)
    assert fired[-1] == (1.0, "at-until") and world.now == 2.0
    with pytest.raises(ValueError, match="must be greater"):
        world.run(until=2.0)


def test_messages_arrive_after_the_latency_and_count_against_their_transaction() -> None:
    world, network, _a, b = make_network(latency={"dist": "constant", "value": 0.25})
    world.new_transaction()
    network.send("orchestrator", "payment", messages.signal("req", "orchestrator", 0))
    world.run(until=1.0)
    assert b.got == [(0.25, ("req", "orchestrator", 0))]
    assert world.messages == [1]


def test_cut_and_heal_between_groups_one_way_and_overlapping() -> None:
    world, network, a, b = make_network()
    world.new_transaction()
    first = network.cut([["orchestrator"], ["payment"]], one_way=True)
    assert network.is_cut("orchestrator", "payment")
    assert not network.is_cut("payment", "orchestrator")
    second = network.cut([["orchestrator"], ["payment"]])
    network.send("orchestrator", "payment", messages.signal("req", "orchestrator", 0))
    network.send("payment", "orchestrator", messages.signal("rep", "payment", 0))
    network.heal(second)
    # the one-way cut is still in force
    assert network.is_cut("orchestrator", "payment")
    assert not network.is_cut("payment", "orchestrator")
    network.send("payment", "orchestrator", messages.signal("rep", "payment", 0))
    network.send("orchestrator", "payment", messages.signal("req", "orchestrator", 0))
    network.heal(first)
    network.send("orchestrator", "payment", messages.signal("req", "orchestrator", 0))
    world.run(until=1.0)
    assert len(a.got) == 1 and len(b.got) == 1
    assert network.lost == 3
    assert world.messages == [5]


def test_loss_and_duplication_rates_are_binomial() -> None:
    world, network, _a, b = make_network(loss=0.1, duplicate=0.2)
    world.new_transaction()
    n = 20_000
    for _ in range(n):
        network.send("orchestrator", "payment", messages.signal("req", "orchestrator", 0))
    world.run(until=1.0)
    # Binomial counts: 4.5 standard deviations is a ~1-in-150,000 false alarm.
    assert abs(network.lost - 0.1 * n) < 4.5 * math.sqrt(n * 0.1 * 0.9)
    delivered = n - network.lost
    assert abs(network.duplicated - 0.2 * delivered) < 4.5 * math.sqrt(delivered * 0.2 * 0.8)
    assert len(b.got) == delivered + network.duplicated
    assert world.messages == [n + network.duplicated]


def test_a_link_overrides_the_network() -> None:
    world, network, a, b = make_network(
        latency={"dist": "constant", "value": 0.001},
        links=[
            {"src": "orchestrator", "dst": "payment", "both_ways": False, "latency": {"dist": "constant", "value": 0.5}}
        ],
    )
    world.new_transaction()
    network.send("orchestrator", "payment", messages.signal("req", "orchestrator", 0))
    network.send("payment", "orchestrator", messages.signal("rep", "payment", 0))
    world.run(until=1.0)
    assert [t for t, _ in b.got] == [0.5]
    assert [t for t, _ in a.got] == [0.001]


def test_a_down_node_drops_what_arrives() -> None:
    world, network, _a, b = make_network()
    world.new_transaction()
    b.crash()
    network.send("orchestrator", "payment", messages.signal("req", "orchestrator", 0))
    world.run(until=1.0)
    b.restart()
    assert b.got == [] and b.crashes == 1 and b.epoch == 1


# ------------------------------------------------------------------ participants


def participant_model(**participant: object) -> Model:
    """A model whose workload never starts, to drive the payment service by
    hand (open to faults outside the plan: the tests crash it)."""
    raw = order_scenario().effective()
    raw["participants"]["payment"].update(participant)
    raw["workload"]["limit"] = 1
    raw["workload"]["interarrival"] = {"dist": "constant", "value": 1000.0}
    scenario = scenario_from_dict(raw)
    return Model(scenario, "orchestration", seed=1, runtime_faults=True)


def request(model: Model, op: int, key: int | None, txn: int = 0, step: int = 0, token: int = 1) -> None:
    model.participants["payment"].receive(messages.request("orchestrator", txn, step, op, key, token))


def drive(model: Model, *ops: tuple[int, int | None]) -> list[tuple[int, int]]:
    for _ in range(3):
        model.world.new_transaction()
    for op, key in ops:
        request(model, op, key)
        model.world.run(until=model.world.now + 1.0)
    return [(e.step, e.op) for e in model.world.effects.of(0)]


def test_idempotent_participant_applies_a_key_once() -> None:
    assert drive(participant_model(), (FORWARD, 7), (FORWARD, 7), (FORWARD, 7)) == [(0, FORWARD)]


def test_idempotent_participant_compensates_once() -> None:
    effects = drive(participant_model(), (FORWARD, 7), (COMPENSATE, 7), (COMPENSATE, 7))
    assert effects == [(0, FORWARD), (0, COMPENSATE)]


def test_compensation_before_the_step_is_a_null_compensation_and_blocks_the_step() -> None:
    effects = drive(participant_model(), (COMPENSATE, 7), (FORWARD, 7))
    assert effects == []
    assert model_replies(participant_model(), (COMPENSATE, 7), (FORWARD, 7)) == ["ok", "refused"]


def test_without_idempotency_every_attempt_applies() -> None:
    model = participant_model(idempotent=False)
    effects = drive(model, (FORWARD, 7), (FORWARD, 7), (COMPENSATE, 7), (COMPENSATE, 7))
    assert effects == [(0, FORWARD), (0, FORWARD), (0, COMPENSATE), (0, COMPENSATE)]


def test_without_keys_an_idempotent_participant_cannot_deduplicate() -> None:
    assert drive(participant_model(), (FORWARD, None), (FORWARD, None)) == [(0, FORWARD), (0, FORWARD)]


def test_a_refusal_is_remembered_under_its_key() -> None:
    model = participant_model(business_failure=1.0)
    assert model_replies(model, (FORWARD, 7)) == ["refused"]
    model.participants["payment"]._t_refuse = 0.0  # the service recovers...
    assert model_replies(model, (FORWARD, 7), fresh=False) == ["refused"]  # ...the key stays refused


def model_replies(model: Model, *ops: tuple[int, int | None], fresh: bool = True) -> list[str]:
    """Send ``ops`` to payment and collect the statuses of its replies."""
    replies: list[str] = []
    orchestrator = model.nodes["orchestrator"]
    orchestrator.handle = lambda msg: replies.append(msg.status)  # type: ignore[method-assign]
    if fresh:
        for _ in range(3):
            model.world.new_transaction()
    for op, key in ops:
        request(model, op, key)
        model.world.run(until=model.world.now + 1.0)
    return replies


def test_workers_bound_concurrency_and_the_rest_queue_in_order() -> None:
    model = participant_model(workers=2, service_time={"dist": "constant", "value": 0.1})
    payment = model.participants["payment"]
    for txn in range(5):
        model.world.new_transaction()
        request(model, FORWARD, txn * 64, txn=txn)
    assert payment.pool.busy == 2 and len(payment.pool.queue) == 3
    model.world.run(until=1.0)
    done = sorted((e.time, txn) for txn in range(5) for e in model.world.effects.of(txn))
    assert [round(t, 9) for t, _ in done] == [0.1, 0.1, 0.2, 0.2, 0.3]
    assert [txn for _, txn in done] == [0, 1, 2, 3, 4]


def test_a_crash_loses_queued_and_running_work_but_not_the_table() -> None:
    model = participant_model(workers=1, service_time={"dist": "constant", "value": 0.1})
    payment = model.participants["payment"]
    model.world.new_transaction()
    request(model, FORWARD, 7)
    model.world.run(until=0.2)
    for txn in (1, 2):
        model.world.new_transaction()
        request(model, FORWARD, txn * 64, txn=txn)
    payment.crash()
    model.world.run(until=1.0)
    payment.restart()
    assert [len(model.world.effects.of(t)) for t in range(3)] == [1, 0, 0]
    assert payment.lost_in_crash == 2
    assert payment.table == {7: "ok"}


# ------------------------------------------------------------------ timers


def test_deadline_queue_expires_live_items_on_time_and_skips_answered_ones() -> None:
    world = World(seed=1)
    answered: set[str] = set()
    fired: list[tuple[float, str]] = []

    def expire(item: str) -> None:
        fired.append((world.now, item))
        if item == "a":
            queue.add("a-retry")  # added while expiring: must not delay "b"

    queue = DeadlineQueue(world, 1.0, lambda item: item not in answered, expire)
    queue.add("a")  # deadline 1.0
    world.at(0.25, lambda _: queue.add("x"))  # deadline 1.25, answered before
    world.at(0.5, lambda _: queue.add("b"))  # deadline 1.5
    world.at(0.75, lambda _: answered.add("x"))
    world.run(until=5.0)
    assert fired == [(1.0, "a"), (1.5, "b"), (2.0, "a-retry")]


def test_deadline_queue_prune_drops_answered_heads_early_and_keeps_the_rest() -> None:
    """``prune`` drops answered entries at the head before their deadline,
    stops at the first live one (answered entries behind it wait), and
    changes nothing that expires."""
    world = World(seed=1)
    answered: set[str] = set()
    fired: list[tuple[float, str]] = []
    queue = DeadlineQueue(world, 1.0, lambda item: item not in answered, lambda item: fired.append((world.now, item)))
    for item in ("a", "b", "c", "d"):
        queue.add(item)
    answered.update({"a", "b", "d"})
    queue.prune()
    assert [item for _, item in queue._queue] == ["c", "d"]
    world.run(until=5.0)
    assert fired == [(1.0, "c")] and not queue._queue


def test_deadline_queue_forgets_everything_on_clear() -> None:
    world = World(seed=1)
    fired: list[str] = []
    queue = DeadlineQueue(world, 1.0, lambda item: True, fired.append)
    queue.add("a")
    world.at(0.5, lambda _: queue.clear())
    world.at(0.6, lambda _: queue.add("b"))
    world.run(until=5.0)
    assert fired == ["b"]
