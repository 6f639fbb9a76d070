"""Scenario validation: every bad input gets one message with file, field, value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.errors import ScenarioError
from sim.scenario import PROTOCOLS, load_scenario, parse_overrides, scenario_from_dict

from conftest import order_dict, order_scenario


def problems(overrides: dict) -> str:
    with pytest.raises(ScenarioError) as info:
        order_scenario(overrides)
    return str(info.value)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"participants.payment.business_failure": 1.5},
            "participants.payment.business_failure = 1.5: input should be less than or equal to 1",
        ),
        (
            {"participants.payment.workrs": 3},
            "participants.payment.workrs: unknown key 'workrs'; did you mean 'workers'?",
        ),
        ({"orchestrator.retyr": {}}, "orchestrator.retyr: unknown key 'retyr'; did you mean 'retry'?"),
        ({"network.latency": {"dist": "exponential", "value": 1}}, "dist 'exponential' takes 'mean', not 'value'"),
        ({"network.latency": {"dist": "uniform", "low": 1}}, "dist 'uniform' needs 'low' and 'high'"),
        (
            {"network.latency.dist": "gauss"},
            'network.latency.dist = "gauss": not allowed (allowed: constant, exponential',
        ),
        (
            {"run.protocols": ["orchestraton"]},
            f"did you mean 'orchestration'? (allowed: {', '.join(PROTOCOLS)})",
        ),
        ({"run.seeds": [1, 1]}, "run.seeds = [1, 1]: must not repeat values; repeated: 1"),
        ({"run.seeds": []}, "run.seeds = []: list should have at least 1 item"),
        ({"run.duration": "ten"}, 'run.duration = "ten": input should be a valid number'),
        ({"run.duration": 0}, "run.duration = 0: input should be greater than 0"),
        (
            {"participants.payment.workers": 0},
            "participants.payment.workers = 0: input should be greater than or equal to 1",
        ),
        (
            {"participants.payment.idempotent": 1},
            "participants.payment.idempotent = 1: input should be a valid boolean",
        ),
        (
            {"participants.payment.business_failure": 0.6, "participants.payment.transient_failure": 0.6},
            "business_failure + transient_failure + hang must be <= 1",
        ),
        (
            {"orchestrator.retry.attempts": 0},
            'orchestrator.retry.attempts = 0: must be a whole number >= 1, or "unlimited"',
        ),
        ({"orchestrator.retry.max": 0.01}, "max (0.01) must be >= initial (0.1)"),
        ({"orchestrator.timeout": -1}, "orchestrator.timeout = -1: input should be greater than 0"),
        (
            {"transactions.order.steps.0.participant": "paymnt"},
            'transactions.order.steps[0].participant = "paymnt": no participant of that name; '
            "did you mean 'payment'? (known: payment, inventory, shipping)",
        ),
        ({"transactions.order.steps.0.compensation": None}, "is compensatable and needs a 'compensation'"),
        ({"transactions.order.steps.2.compensation": "unship"}, "is pivot and takes no 'compensation'"),
        ({"transactions.order.steps.1.kind": "retriable"}, "is retriable, so it must come after the pivot"),
        ({"transactions.order.steps.0.kind": "pivot"}, "at most one step may be the pivot"),
        ({"transactions.order.steps.1.compensation": "refund"}, "names must be unique; repeated: ['refund']"),
        (
            {"workload.transaction": "ordr"},
            "workload.transaction = \"ordr\": no transaction of that name; did you mean 'order'?",
        ),
        (
            {"faults": [{"kind": "crash", "target": "orchestrater", "at": 1.0}]},
            "faults[0].target = \"orchestrater\": no node of that name; did you mean 'orchestrator'?",
        ),
        ({"faults": [{"kind": "crash", "at": 1.0}]}, "faults[0]: a crash fault needs 'target'"),
        (
            {"faults": [{"kind": "crash", "target": "payment", "at": 1.0, "groups": [["a"], ["b"]]}]},
            "a crash fault does not take 'groups'",
        ),
        ({"faults": [{"kind": "crash", "target": "payment", "at": 99.0}]}, "must be before the end of the workload"),
        (
            {"faults": [{"kind": "partition", "groups": [["payment"]], "at": 1.0}]},
            "a partition fault needs at least two groups",
        ),
        (
            {"faults": [{"kind": "partition", "groups": [["payment"], ["payment"]], "at": 1.0}]},
            "'payment' is in more than one group",
        ),
        (
            {"faults": [{"kind": "explode", "target": "payment", "at": 1.0}]},
            "(allowed: crash, pause, partition, loss, duplicate, delay, slow, failure_rate)",
        ),
        (
            {"network.links": [{"src": "orchestrator", "dst": "db"}]},
            'network.links[0].dst = "db": no node of that name',
        ),
        ({"name": "has spaces"}, 'name = "has spaces": string should match pattern'),
    ],
)
def test_bad_values_are_explained(overrides: dict, expected: str) -> None:
    message = problems(overrides)
    assert message.startswith("test (with --set ")
    assert expected in message


def test_reserved_participant_names_are_refused() -> None:
    raw = order_dict()
    raw["participants"]["orchestrator"] = {}
    with pytest.raises(ScenarioError, match="'orchestrator' is a name the harness uses itself"):
        scenario_from_dict(raw)


def test_every_problem_is_listed_once() -> None:
    message = problems({"participants.payment.workers": 0, "participants.payment.hang": -1})
    assert "2 problems" in message
    assert message.count("  - participants.payment.workers = 0") == 1


def test_an_override_cannot_invent_a_participant() -> None:
    message = problems({"participants.paymnt.workers": 2})
    assert "--set participants.paymnt.workers: no participant 'paymnt'; did you mean 'payment'?" in message


def test_override_list_index_out_of_range() -> None:
    assert "is a list of 3; index with 0..2" in problems({"transactions.order.steps.5.kind": "pivot"})


def test_override_strings_are_parsed_as_toml() -> None:
    assert parse_overrides(["a.b=1", "c=true", "d=[1, 2]", "e=order", 'f={ dist = "constant", value = 2 }']) == [
        ("a.b", 1),
        ("c", True),
        ("d", [1, 2]),
        ("e", "order"),
        ("f", {"dist": "constant", "value": 2}),
    ]
    with pytest.raises(ScenarioError, match="expected dotted.key=value"):
        parse_overrides(["novalue"])


def test_files_missing_unreadable_or_not_toml(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="nope.toml: no such file"):
        load_scenario(tmp_path / "nope.toml")
    with pytest.raises(ScenarioError, match="is a directory"):
        load_scenario(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ScenarioError, match=r"bad.toml: is not valid TOML: .*line 1"):
        load_scenario(bad)
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    with pytest.raises(ScenarioError) as info:
        load_scenario(empty)
    text = str(info.value)
    assert "name: required, but missing" in text
    assert "participants: required, but missing" in text


def test_defaults_are_filled_in_and_the_only_transaction_is_the_workload() -> None:
    raw = order_dict()
    del raw["workload"]["transaction"]
    scenario = scenario_from_dict(raw)
    assert scenario.workload.transaction == "order"
    config = scenario.effective()
    assert config["orchestrator"]["recovery"] is True
    assert config["orchestrator"]["compensation_retry"]["attempts"] == "unlimited"
    assert config["participants"]["payment"]["idempotent"] is True
    assert config["network"]["latency"] == {"dist": "constant", "value": 0.001}
    # the effective config is itself a valid scenario that loads to the same thing
    assert scenario_from_dict(config).effective() == config


def test_two_transactions_need_the_workload_to_choose() -> None:
    raw = order_dict()
    raw["transactions"]["other"] = raw["transactions"]["order"]
    del raw["workload"]["transaction"]
    with pytest.raises(ScenarioError, match="workload.transaction: required when there is more than one"):
        scenario_from_dict(raw)


# ------------------------------------------------------------------ the effective config loads back

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.toml")), ids=lambda p: p.stem)
def test_every_scenario_file_loads_back_from_its_effective_config(path: Path) -> None:
    scenario = load_scenario(path)
    again = scenario_from_dict(scenario.effective(), source="effective")
    assert again == scenario
    assert again.effective() == scenario.effective()


def test_an_untargeted_link_fault_survives_the_effective_config() -> None:
    # `target` omitted means every link; effective() writes it as null.
    scenario = order_scenario({"faults": [{"kind": "loss", "probability": 0.1, "at": 1.0}]})
    config = scenario.effective()
    assert config["faults"][0]["target"] is None
    assert scenario_from_dict(config) == scenario
    # and a run with overrides re-validates the effective config
    import sim

    result = sim.run(scenario, overrides={"run.duration": 2.0})
    assert result.summary.iloc[0]["transactions"] > 0


_LINK_FAULT = st.fixed_dictionaries(
    {"kind": st.sampled_from(["loss", "duplicate"]), "probability": st.floats(0.0, 1.0), "at": st.floats(0.0, 9.0)},
    optional={
        "target": st.sampled_from(["payment", "*", ["payment", "shipping"]]),
        "duration": st.floats(0.1, 5.0),
        "one_way": st.booleans(),
    },
)
_OTHER_FAULT = st.one_of(
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["crash", "pause"]),
            "target": st.sampled_from(["inventory", "*", ["payment", "shipping"]]),
            "at": st.floats(0.0, 9.0),
        },
        optional={"duration": st.floats(0.1, 5.0)},
    ),
    st.fixed_dictionaries(
        {
            "kind": st.just("delay"),
            "extra": st.just({"dist": "exponential", "mean": 0.01}),
            "at": st.floats(0.0, 9.0),
        },
        optional={"groups": st.just([["shipping"], ["payment", "inventory"]])},
    ),
    st.fixed_dictionaries(
        {"kind": st.just("failure_rate"), "target": st.just("payment"), "at": st.floats(0.0, 9.0)},
        optional={"business_failure": st.floats(0.0, 0.5), "transient_failure": st.floats(0.0, 0.5)},
    ).filter(lambda f: "business_failure" in f or "transient_failure" in f),
)


@settings(max_examples=60, deadline=None)
@given(
    faults=st.lists(st.one_of(_LINK_FAULT, _OTHER_FAULT), max_size=4),
    protocols=st.sampled_from([["orchestration"], ["choreography"], ["2pc"], ["orchestration", "2pc", "choreography"]]),
    business=st.floats(0.0, 0.3),
)
def test_a_generated_scenario_loads_back_from_its_effective_config(
    faults: list[dict], protocols: list[str], business: float
) -> None:
    scenario = order_scenario(
        {"faults": faults, "run.protocols": protocols, "participants.payment.business_failure": business}
    )
    assert scenario_from_dict(scenario.effective(), source="effective") == scenario


def test_validate_warns_about_a_retriable_step_that_can_be_refused(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sim.cli import cli

    data = order_dict()
    data["participants"]["email"] = {"service_time": {"dist": "constant", "value": 0.01}}
    data["transactions"]["order"]["steps"].append({"name": "notify", "participant": "email", "kind": "retriable"})
    assert order_scenario().warnings() == []
    assert scenario_from_dict(data).warnings() == []
    data["participants"]["email"]["business_failure"] = 0.01
    (warning,) = scenario_from_dict(data).warnings()
    assert "'notify'" in warning and "'email'" in warning and "cannot complete" in warning
    # a bad deploy on the timeline can make it refuse too
    data["participants"]["email"]["business_failure"] = 0.0
    data["faults"] = [{"kind": "failure_rate", "target": "email", "business_failure": 0.5, "at": 1.0}]
    assert len(scenario_from_dict(data).warnings()) == 1
    # and `sagasim validate` says so, on stderr, and still exits 0
    steps = (
        '[{name="charge", participant="payment", compensation="refund"}, '
        '{name="ship", participant="shipping", kind="pivot"}, '
        '{name="notify", participant="payment", kind="retriable"}]'
    )
    argv = [
        "validate",
        str(ROOT / "scenarios" / "order-flaky-payment.toml"),
        "--set",
        f"transactions.order.steps={steps}",
    ]
    done = CliRunner().invoke(cli, argv)
    assert done.exit_code == 0, done.output
    assert "warning" in done.output and "'notify'" in done.output and "cannot complete" in done.output


def test_a_link_set_twice_is_one_clear_error() -> None:
    """Links are both ways unless said otherwise: a second link over the same
    direction is refused by validation (it used to fail at run time, taking
    the same random stream twice)."""
    there = {"src": "orchestrator", "dst": "payment", "latency": {"dist": "constant", "value": 0.001}}
    back = {"src": "payment", "dst": "orchestrator"}
    with pytest.raises(ScenarioError, match=r"network.links\[1\]: payment->orchestrator is already set by network"):
        order_scenario({"network.links": [there, back]})
    one_way = [{**there, "both_ways": False}, {**back, "both_ways": False}]
    assert len(order_scenario({"network.links": one_way}).network.links) == 2
    # the same direction twice, one way each, is refused too
    with pytest.raises(ScenarioError, match=r"orchestrator->payment is already set by network.links\[0\]"):
        order_scenario({"network.links": [{**there, "both_ways": False}, {**there, "both_ways": False}]})
