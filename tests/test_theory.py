"""The model against theory: queueing formulas and saga probabilities.

Each test runs the simulator with a fixed seed and compares a measured
quantity with its closed form. Tolerances are statistical, never fudge
factors; each one says how it was derived and its false-failure probability,
that is, the chance that a *correct* model fails the check for a seed picked
at random. (With a fixed seed a run is deterministic, so a check that passes
keeps passing until the model, or the order of its random draws, changes.)

Two kinds of bound are used:

* Independent samples (one value per transaction in the saga runs, where no
  queueing couples transactions): the CLT, ``|mean - theory| < 4 * SE`` with
  the standard error from the sample standard deviation (or analytically for a
  proportion). Two-sided false-failure probability ``2 * (1 - Phi(4))`` =
  6.3e-5. Goodness of fit of a whole distribution: Pearson's chi-square, fail
  when the p-value is below 1e-4 (false-failure probability 1e-4).
* Correlated samples (response times of successive customers of a queue):
  batch means. After a warm-up, the transactions in arrival order are cut into
  25 contiguous batches; the batch means are nearly independent when a batch
  is much longer than the queue's relaxation time, so
  ``SE = sd(batch means) / sqrt(25)`` and ``(mean - theory) / SE`` is about
  Student-t with 24 degrees of freedom. Bound: 4 SE, false-failure probability
  ``2 * t.sf(4, 24)`` = 5.3e-4. Each such test also asserts that SE is small
  relative to the target, so that the check has power (a model off by a few
  percent would fail).

Response time equals the transaction's latency when the network's latency is
the constant 0: the command reaches the participant at the arrival instant and
the reply reaches the orchestrator at the completion instant.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import pytest
from scipy import stats

from sim.runner import Model, RunOutput, run_once
from sim.scenario import Scenario, scenario_from_dict

from conftest import ORDER_STEPS

#: Bound in standard errors for every CLT or batch-means check (see the module doc).
K = 4.0
#: Number of batches for batch means.
BATCHES = 25
#: Chi-square goodness-of-fit checks fail below this p-value.
ALPHA = 1e-4


# ---------------------------------------------------------------- helpers


def batch_means(x: np.ndarray, batches: int = BATCHES) -> tuple[float, float]:
    """Grand mean of ``x`` and its batch-means standard error."""
    size = len(x) // batches
    means = x[: size * batches].reshape(batches, size).mean(axis=1)
    return float(means.mean()), float(means.std(ddof=1) / math.sqrt(batches))


def erlang_c(c: int, a: float) -> float:
    """Probability that an arrival waits in an M/M/c queue with offered load ``a = lambda/mu``."""
    assert a < c
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def queue_scenario(rate: float, service: dict, workers: int, duration: float, drain: float = 50.0) -> Scenario:
    """One compensatable step on one participant, Poisson arrivals, no failures, zero network delay."""
    return scenario_from_dict(
        {
            "name": "queue",
            "run": {"duration": duration, "drain": drain},
            "workload": {"transaction": "t", "interarrival": {"dist": "exponential", "mean": 1.0 / rate}},
            "network": {"latency": {"dist": "constant", "value": 0.0}},
            "participants": {
                "svc": {
                    "service_time": service,
                    "workers": workers,
                    "business_failure": 0.0,
                    "transient_failure": 0.0,
                    "hang": 0.0,
                }
            },
            "transactions": {"t": {"steps": [{"name": "op", "participant": "svc", "compensation": "undo"}]}},
            "orchestrator": {"timeout": 1000.0},
        },
        source="test_theory",
    )


@functools.lru_cache(maxsize=2)
def queue_run(rate: float, mean_service: float, workers: int, duration: float, seed: int) -> RunOutput:
    """An M/M/c run, cached: several tests read the same run (two kept, to bound memory)."""
    scenario = queue_scenario(rate, {"dist": "exponential", "mean": mean_service}, workers, duration)
    return run_once(scenario, "orchestration", seed)


def response_times(out: RunOutput, warmup: int) -> np.ndarray:
    """Latencies in arrival order after discarding the first ``warmup`` transactions."""
    cols = out.transactions
    assert cols["txn_id"] == sorted(cols["txn_id"])  # arrival order
    assert set(cols["outcome"]) == {"committed"}
    return np.asarray(cols["latency"], dtype=float)[warmup:]


FAST_RETRY = {"initial": 0.001, "multiplier": 1.0, "max": 0.001, "jitter": False}


def saga_scenario(
    steps: Sequence[dict],
    business: Sequence[float],
    transient: Sequence[float],
    comp_failure: Sequence[float],
    attempts: int = 3,
    duration: float = 40.0,
    rate: float = 500.0,
) -> Scenario:
    """A saga with one participant per step on a fast network with plenty of workers.

    Service times are about 1 ms, the network 0.5 ms, 1000 workers per
    participant (load 0.5 worker on average), and the timeout 2 s: a timeout
    needs a service time of more than 2000 means (probability e^-2000), so
    none happens, but the deadline machinery still runs. The drain (10 s)
    dwarfs the longest saga.
    """
    participants = {
        step["participant"]: {
            "service_time": {"dist": "exponential", "mean": 0.001},
            "workers": 1000,
            "business_failure": b,
            "transient_failure": q,
            "hang": 0.0,
            "compensation_failure": c,
        }
        for step, b, q, c in zip(steps, business, transient, comp_failure, strict=True)
    }
    return scenario_from_dict(
        {
            "name": "saga",
            "run": {"duration": duration, "drain": 10.0},
            "workload": {"transaction": "order", "interarrival": {"dist": "exponential", "mean": 1.0 / rate}},
            "network": {"latency": {"dist": "constant", "value": 0.0005}},
            "participants": participants,
            "transactions": {"order": {"steps": list(steps)}},
            "orchestrator": {
                "timeout": 2.0,
                "retry": {"attempts": attempts, **FAST_RETRY},
                "compensation_retry": {"attempts": "unlimited", **FAST_RETRY},
            },
        },
        source="test_theory",
    )


def saga_theory(
    steps: Sequence[dict],
    business: Sequence[float],
    transient: Sequence[float],
    comp_failure: Sequence[float],
    attempts: int,
) -> dict[str, object]:
    """Exact expectations for a saga without timeouts, hangs or message faults,
    run by the robust orchestrator (idempotency keys, ``compensate_uncertain``).

    Step i (participants independent, one outcome draw per attempt: refuse with
    probability b, transient error with q, success with s = 1 - b - q):

    * a compensatable step makes attempt j iff the j-1 attempts before it all
      failed transiently, probability q^(j-1); so its retries have mean
      r = sum_{j=1}^{A-1} q^j (a refusal ends the step too). It succeeds with
      S = s * sum_{j=0}^{A-1} q^j, is refused with b * sum_{j=0}^{A-1} q^j and
      exhausts its attempts with X = q^A;
    * the pivot is retried until it succeeds or is refused (an error reply does
      not prove that no copy of the command lands), so its attempts are
      geometric: r = q / (1 - q), S = s / (1 - q), X = 0;
    * a retriable step is retried until it succeeds: r = (b + q) / (1 - b - q),
      S = 1;
    * a step is reached iff every earlier step succeeded: R_i = prod_{k<i} S_k.

    The saga fails at step i with probability F_i = R_i (1 - S_i), and then
    compensates every compensatable step k < i (they were all confirmed). A
    refusal under an idempotency key is final, so a refused step needs no
    compensation; a step that exhausted its attempts on errors is uncertain and
    gets a compensation command too, which undoes nothing (a null
    compensation, not an effect). A compensation attempt fails with
    probability c_k and is retried without limit: c_k / (1 - c_k) retries on
    average. Hence

    * P(committed) = prod_i S_i,
    * E[compensations applied] = sum_i F_i * #{compensatable k < i},
    * E[null compensations] = sum_i R_i X_i,
    * E[retries] = sum_i R_i r_i + sum_i F_i sum_{compensatable k < i} c_k / (1 - c_k)
      + sum_i R_i X_i c_i / (1 - c_i).
    """
    kinds = [s.get("kind", "compensatable") for s in steps]
    reach = 1.0
    fail_at = []
    e_comps = 0.0
    e_null = 0.0
    e_retries = 0.0
    for i, (b, q) in enumerate(zip(business, transient, strict=True)):
        s = 1.0 - b - q
        if kinds[i] == "compensatable":
            retries = sum(q**j for j in range(1, attempts))
            success = s * sum(q**j for j in range(attempts))
            exhaust = q**attempts
        elif kinds[i] == "pivot":
            retries, success, exhaust = q / (1.0 - q), s / (1.0 - q), 0.0
        else:
            retries, success, exhaust = (b + q) / s, 1.0, 0.0
        fail = reach * (1.0 - success)
        fail_at.append(fail)
        e_retries += reach * retries
        earlier = [k for k in range(i) if kinds[k] == "compensatable"]
        e_comps += fail * len(earlier)
        e_retries += fail * sum(comp_failure[k] / (1.0 - comp_failure[k]) for k in earlier)
        e_null += reach * exhaust
        e_retries += reach * exhaust * comp_failure[i] / (1.0 - comp_failure[i])
        reach *= success
    return {"p_commit": reach, "fail_at": fail_at, "compensations": e_comps, "null": e_null, "retries": e_retries}


def assert_clean(out: RunOutput) -> None:
    """Fault-free runs: every transaction committed or compensated, consistent, the coordinator agreeing."""
    s = out.summary
    cols = out.transactions
    assert s["transactions"] > 0
    assert s["inconsistent"] == 0
    assert s["stuck"] == 0
    assert s["aborted"] == 0
    assert s["timeouts"] == 0
    assert s["gave_up"] == 0
    assert s["committed"] + s["compensated"] == s["transactions"]
    assert set(cols["outcome"]) <= {"committed", "compensated"}
    assert all(cols["consistent"])
    assert cols["coordinator"] == cols["outcome"]  # belief matches the checker's verdict
    assert all(r == [] for r in cols["anomalies"])


def assert_mean_close(values: np.ndarray, theory: float, what: str) -> None:
    """CLT check on independent values: |mean - theory| < K * sd / sqrt(n)."""
    n = len(values)
    mean = float(values.mean())
    se = float(values.std(ddof=1)) / math.sqrt(n)
    assert se > 0
    assert abs(mean - theory) < K * se, f"{what}: mean {mean:.5f}, theory {theory:.5f}, SE {se:.5f}"


def failure_categories(out: RunOutput, n_steps: int) -> np.ndarray:
    """Counts of (saga failed at step 1, ..., failed at step n, committed).

    Steps before the failing one were all applied, so for a compensated saga
    ``steps_applied`` is the index of the step that failed.
    """
    counts = np.zeros(n_steps + 1, dtype=int)
    for outcome, applied in zip(out.transactions["outcome"], out.transactions["steps_applied"], strict=True):
        counts[n_steps if outcome == "committed" else applied] += 1
    return counts


def assert_multinomial(observed: np.ndarray, probabilities: Sequence[float], what: str) -> None:
    """Pearson chi-square goodness of fit; every expected count is >= 5 so the chi-square law applies.

    Cells of probability zero must be empty, and are left out of the test.
    """
    probs = np.asarray(probabilities, dtype=float)
    assert abs(probs.sum() - 1.0) < 1e-12
    impossible = probs == 0.0
    assert (observed[impossible] == 0).all(), f"{what}: impossible cells occurred: {observed.tolist()}"
    observed, probs = observed[~impossible], probs[~impossible]
    expected = observed.sum() * probs
    assert expected.min() >= 5, f"{what}: expected counts too small for chi-square: {expected}"
    p_value = stats.chisquare(observed, expected).pvalue
    assert p_value > ALPHA, f"{what}: observed {observed.tolist()}, expected {expected.round(1).tolist()}, p={p_value}"


# ---------------------------------------------------------------- queueing


@pytest.mark.parametrize(
    ("rho", "duration", "warmup", "max_rel_se"),
    [
        # Relaxation time of M/M/1 ~ 1 / (mu (1 - sqrt(rho))^2): 12 customers at rho = 0.5,
        # 72 at 0.8. The warm-ups (1000 and 5000 customers) are > 70 relaxation times, and
        # the batches (about 2000 and 3800 customers) > 50, so batch means are nearly
        # independent. Over 8 other seeds the relative SE was 1.2-1.6% at rho = 0.5 and
        # 2.3-3.4% at 0.8 (z-scores all within +-1.4); the power bounds on SE are about
        # twice the typical value (the batch-means SE itself varies by ~15%).
        (0.5, 1000.0, 1000, 0.025),
        (0.8, 1250.0, 5000, 0.06),
    ],
)
def test_mm1_mean_response_time(rho: float, duration: float, warmup: int, max_rel_se: float) -> None:
    mu = 100.0
    lam = rho * mu
    out = queue_run(lam, 1.0 / mu, 1, duration, 1)
    x = response_times(out, warmup)
    w = 1.0 / (mu - lam)
    mean, se = batch_means(x)
    assert se < max_rel_se * w, f"batch-means SE {se:.5f} too large for a useful test"
    assert abs(mean - w) < K * se, f"M/M/1 rho={rho}: mean response {mean:.5f}, theory {w:.5f}, SE {se:.5f}"


def test_mm1_response_time_distribution() -> None:
    """The M/M/1 sojourn time is exponential with rate mu - lambda: P(T > t) = exp(-(mu - lambda) t).

    Checked at the 90th and 99th percentiles by batch means of the indicator
    ``T > t`` (same batching and 4-SE bound as the mean). Expected SE: the
    indicator has variance p(1-p) and about the same autocorrelation time as T
    (~8 customers), so SE ~ sqrt(8 * 0.09 / 49000) = 0.0038 at p = 0.1 and
    0.0013 at p = 0.01; the power assertion allows twice that.
    """
    mu, lam = 100.0, 50.0
    x = response_times(queue_run(lam, 1.0 / mu, 1, 1000.0, 1), 1000)
    for p, max_se in ((0.1, 0.008), (0.01, 0.0026)):
        t = -math.log(p) / (mu - lam)
        mean, se = batch_means((x > t).astype(float))
        assert se < max_se
        assert abs(mean - p) < K * se, f"P(T > {t:.4f}): {mean:.5f}, theory {p}, SE {se:.5f}"


def test_poisson_arrival_count() -> None:
    """Arrivals in [0, duration) with exponential gaps are Poisson(lambda * duration).

    Bound: 4 standard deviations sqrt(lambda T) (normal approximation of a
    Poisson with mean 50 000, excellent); false-failure probability 6.3e-5.
    """
    lam, duration = 50.0, 1000.0
    n = queue_run(lam, 0.01, 1, duration, 1).summary["transactions"]
    assert abs(n - lam * duration) < K * math.sqrt(lam * duration)


MMC = {"c": 3, "mu": 100.0, "rho": 0.7, "duration": 250.0, "seed": 1}


def _mmc_run() -> RunOutput:
    c, mu, rho = MMC["c"], MMC["mu"], MMC["rho"]
    return queue_run(rho * c * mu, 1.0 / mu, c, MMC["duration"], MMC["seed"])


def test_mmc_mean_response_time() -> None:
    """M/M/3 at rho = 0.7: W = C(c, a) / (c mu - lambda) + 1 / mu with Erlang C.

    Warm-up 1000 customers and batches of about 2000; measured autocorrelation
    time ~15 customers; over 8 other seeds the relative SE was 1.2-2.0%; the
    power assertion allows 3.5%.
    """
    c, mu, rho = MMC["c"], MMC["mu"], MMC["rho"]
    lam = rho * c * mu
    a = lam / mu
    w = erlang_c(c, a) / (c * mu - lam) + 1.0 / mu
    mean, se = batch_means(response_times(_mmc_run(), 1000))
    assert se < 0.035 * w
    assert abs(mean - w) < K * se, f"M/M/{c}: mean response {mean:.5f}, theory {w:.5f}, SE {se:.5f}"


def test_erlang_c_formula() -> None:
    """The helper against known values: C(1, a) = a (M/M/1), and C(2, 1) = 1/3."""
    assert erlang_c(1, 0.5) == pytest.approx(0.5)
    assert erlang_c(2, 1.0) == pytest.approx(1.0 / 3.0)


def test_mmc_utilization() -> None:
    """``utilization_svc`` = busy time / (workers * (duration + drain)).

    Busy time is added when a service starts. Every transaction arrives before
    ``duration`` and starts service long before the end of the drain (asserted:
    the last one finishes before the end), so busy time is exactly the sum of
    the N service draws: no edge effect is left. Hence two checks:

    * given N, busy time is a sum of N independent exponentials, Gamma(N, 1/mu)
      exactly: it must lie in the central 1 - 1e-4 interval (false-failure
      probability 1e-4);
    * unconditionally N is Poisson(lambda T), busy time is compound Poisson with
      mean lambda T / mu and variance lambda T E[S^2] = 2 lambda T / mu^2, so the
      utilization is lambda / (c mu) * T / (T + drain) within 4 of its standard
      deviations (normal approximation of a compound Poisson with ~52 000 terms;
      false-failure probability 6.3e-5). Its relative SD sqrt(2 / (lambda T)) is
      0.6%, so an error of a few percent would fail.
    """
    c, mu, rho, duration = MMC["c"], MMC["mu"], MMC["rho"], MMC["duration"]
    lam = rho * c * mu
    out = _mmc_run()
    s = out.summary
    end = s["duration"] + s["drain"]
    assert s["duration"] == duration
    assert max(out.transactions["finished_at"]) < end
    util = s["utilization_svc"]
    busy = util * c * end
    n = s["transactions"]
    low, high = stats.gamma.ppf([ALPHA / 2, 1 - ALPHA / 2], a=n, scale=1.0 / mu)
    assert low < busy < high, f"busy time {busy:.3f} outside Gamma({n}, {1 / mu}) interval [{low:.3f}, {high:.3f}]"
    expected = lam / (c * mu) * duration / end
    sd = math.sqrt(2 * lam * duration) / mu / (c * end)
    assert abs(util - expected) < K * sd, f"utilization {util:.5f}, theory {expected:.5f}, SD {sd:.5f}"


@pytest.mark.parametrize(
    "service",
    [
        {"dist": "constant", "value": 0.01},
        {"dist": "uniform", "low": 0.0, "high": 0.02},
    ],
    ids=["M/D/1", "M/U/1"],
)
def test_mg1_pollaczek_khinchine(service: dict) -> None:
    """M/G/1 at rho = 0.7: W = E[S] + lambda E[S^2] / (2 (1 - rho)) (Pollaczek-Khinchine).

    Both services have mean 10 ms; E[S^2] = 1e-4 (constant) and 1.33e-4
    (uniform). Warm-up 2000 customers (relaxation time of an M/G/1 at 0.7 is
    tens of customers), batches of about 2000; batch means, 4-SE bound. Over 8
    other seeds the relative SE was 1.2-1.5% (constant) and 1.2-2.3% (uniform);
    the power assertion allows 4%.
    """
    mean_s = 0.01
    lam = 70.0
    scenario = queue_scenario(lam, service, 1, 750.0)
    dist = scenario.participants["svc"].service_time.built
    assert dist.mean == pytest.approx(mean_s)
    es2 = dist.variance + dist.mean**2
    rho = lam * mean_s
    w = mean_s + lam * es2 / (2 * (1 - rho))
    mean, se = batch_means(response_times(run_once(scenario, "orchestration", 1), 2000))
    assert se < 0.04 * w
    assert abs(mean - w) < K * se, f"{service['dist']}: mean response {mean:.5f}, theory {w:.5f}, SE {se:.5f}"


# ---------------------------------------------------------------- sagas


def test_saga_theory_formula() -> None:
    """The helper against hand-derived values for the order saga."""
    p1, p2, p3 = 0.1, 0.2, 0.3
    t = saga_theory(ORDER_STEPS, (p1, p2, p3), (0, 0, 0), (0, 0, 0), 3)
    assert t["p_commit"] == pytest.approx((1 - p1) * (1 - p2) * (1 - p3))
    assert t["fail_at"] == pytest.approx([p1, (1 - p1) * p2, (1 - p1) * (1 - p2) * p3])
    assert t["compensations"] == pytest.approx((1 - p1) * p2 + 2 * (1 - p1) * (1 - p2) * p3)
    assert t["retries"] == 0
    q, a = 0.3, 3
    t = saga_theory(ORDER_STEPS, (0, 0, 0), (q, q, q), (0, 0, 0), a)
    r, e = q + q**2, q**a
    # charge and reserve: at most 3 attempts; the pivot: until it succeeds
    assert t["retries"] == pytest.approx(r * (1 + (1 - e)) + (1 - e) ** 2 * q / (1 - q))
    assert t["fail_at"] == pytest.approx([e, (1 - e) * e, 0.0])
    assert t["null"] == pytest.approx(e + (1 - e) * e)


def test_order_saga_business_failures() -> None:
    """Business failures only: p1, p2, p3 per attempt, no transient failures.

    * The step at which the saga fails (or "committed") is multinomial with
      probabilities p1, (1-p1) p2, (1-p1)(1-p2) p3, (1-p1)(1-p2)(1-p3):
      chi-square, p > 1e-4.
    * P(committed): binomial proportion within 4 analytic SEs sqrt(P(1-P)/n)
      (false-failure probability 6.3e-5); SE ~0.003 at n ~ 20 000.
    * Compensations per transaction: a refusal at step k compensates the k-1
      steps before it (the pivot, last, is never compensated), so
      E = (1-p1) p2 * 1 + (1-p1)(1-p2) p3 * 2; CLT with the sample SD, 4 SE.
    * Exactly, per transaction: no retries; committed sagas apply 3 steps and
      no compensation; a saga refused at step k applied k-1 steps and k-1
      compensations.
    """
    business = (0.1, 0.15, 0.2)
    zero = (0.0, 0.0, 0.0)
    theory = saga_theory(ORDER_STEPS, business, zero, zero, 3)
    out = run_once(saga_scenario(ORDER_STEPS, business, zero, zero), "orchestration", 1)
    assert_clean(out)
    cols = out.transactions
    n = out.summary["transactions"]
    assert n > 15_000

    p = theory["p_commit"]
    rate = out.summary["committed_rate"]
    assert abs(rate - p) < K * math.sqrt(p * (1 - p) / n), f"committed rate {rate:.4f}, theory {p:.4f}"
    assert out.summary["compensated_rate"] == pytest.approx(1 - rate)

    assert_multinomial(failure_categories(out, 3), [*theory["fail_at"], p], "failing step")
    comps = np.asarray(cols["compensations_applied"], dtype=float)
    assert_mean_close(comps, theory["compensations"], "compensations per transaction")

    assert set(cols["retries"]) == {0}
    for outcome, applied, comp in zip(
        cols["outcome"], cols["steps_applied"], cols["compensations_applied"], strict=True
    ):
        if outcome == "committed":
            assert (applied, comp) == (3, 0)
        else:
            assert applied == comp and applied in (0, 1, 2)


def test_order_saga_transient_retries() -> None:
    """Transient failures only, q_i per attempt, retry.attempts = A = 3.

    * Retries per transaction: E = sum_i R_i r_i with r_i = q_i + q_i^2 and
      R_i = prod_{k<i} (1 - q_k^3) (a later step is attempted only if the
      earlier ones succeeded; see ``saga_theory``); CLT with the sample SD,
      4 SE (false-failure probability 6.3e-5). SE ~0.007 against a mean of
      0.925, while miscounting attempts by one (A = 2 or 4) would move the mean
      by 0.06 or more (9 SE).
    * The step whose attempts are exhausted (probability q_i^A once reached),
      or "committed": multinomial, chi-square p > 1e-4. An exhausted step is
      like a refusal: the earlier steps are compensated. The pivot never
      exhausts: an error reply does not prove that no copy of the command
      lands, so it is retried until it succeeds (its cell must be empty).
    """
    transient = (0.3, 0.2, 0.25)
    zero = (0.0, 0.0, 0.0)
    attempts = 3
    theory = saga_theory(ORDER_STEPS, zero, transient, zero, attempts)
    out = run_once(saga_scenario(ORDER_STEPS, zero, transient, zero, attempts=attempts), "orchestration", 2)
    assert_clean(out)
    cols = out.transactions
    retries = np.asarray(cols["retries"], dtype=float)
    assert_mean_close(retries, theory["retries"], "retries per transaction")
    assert out.summary["retries_per_txn"] == pytest.approx(retries.mean())
    assert_multinomial(failure_categories(out, 3), [*theory["fail_at"], theory["p_commit"]], "exhausted step")
    assert_mean_close(np.asarray(cols["compensations_applied"], dtype=float), theory["compensations"], "compensations")


def test_single_step_retry_distribution() -> None:
    """One step, transient failure q per attempt, A = 4 attempts: the whole law of the retries.

    The step makes attempt j+1 iff attempts 1..j all failed, so with R the
    retries: P(R = j, committed) = q^j (1 - q) for j = 0..A-1, and
    P(R = A-1, compensated) = q^A (every attempt failed; nothing to
    compensate, the step was never applied). Chi-square over these A + 1
    cells, p > 1e-4.
    """
    q, attempts = 0.3, 4
    steps = ({"name": "op", "participant": "svc", "compensation": "undo"},)
    out = run_once(saga_scenario(steps, (0.0,), (q,), (0.0,), attempts=attempts, duration=20.0), "orchestration", 3)
    assert_clean(out)
    cols = out.transactions
    cells = np.zeros(attempts + 1, dtype=int)
    for outcome, r, applied in zip(cols["outcome"], cols["retries"], cols["steps_applied"], strict=True):
        if outcome == "committed":
            assert applied == 1
            cells[r] += 1
        else:
            assert (r, applied) == (attempts - 1, 0)
            cells[attempts] += 1
    probs = [q**j * (1 - q) for j in range(attempts)] + [q**attempts]
    assert_multinomial(cells, probs, "retries of one step")


def test_order_saga_all_failure_kinds() -> None:
    """Business failures, transient failures and failing compensations at once.

    Compensations fail with probability c_k per attempt and are retried without
    limit, so each takes c_k / (1 - c_k) retries on average. Checks (see
    ``saga_theory`` for the derivation): P(committed) within 4 analytic SEs;
    the failing step by chi-square; compensations and retries per transaction
    by the CLT with the sample SD, 4 SE. And exactly, per transaction, the
    message count: every attempt (forward or compensation) is one command and
    one reply, and a failed saga attempted one step more than it applied, so
    messages = 2 * (steps_applied + [compensated] + compensations_applied + retries + [null]),
    where [null] is 1 when the failing step exhausted its attempts and got a
    null compensation; the share of such sagas is checked against
    sum_i R_i q_i^A by the CLT.

    Power: the retries of failing compensations add 0.105 to the expected
    retries (0.593 in all), 17 times the SE of ~0.006, so a model that did not
    retry compensations, or counted their retries elsewhere, would fail.
    """
    business = (0.05, 0.08, 0.1)
    transient = (0.2, 0.1, 0.15)
    comp_failure = (0.3, 0.2, 0.0)
    attempts = 3
    theory = saga_theory(ORDER_STEPS, business, transient, comp_failure, attempts)
    out = run_once(saga_scenario(ORDER_STEPS, business, transient, comp_failure, attempts=attempts), "orchestration", 4)
    assert_clean(out)
    cols = out.transactions
    n = out.summary["transactions"]
    p = theory["p_commit"]
    assert abs(out.summary["committed_rate"] - p) < K * math.sqrt(p * (1 - p) / n)
    assert_multinomial(failure_categories(out, 3), [*theory["fail_at"], p], "failing step")
    assert_mean_close(np.asarray(cols["compensations_applied"], dtype=float), theory["compensations"], "compensations")
    assert_mean_close(np.asarray(cols["retries"], dtype=float), theory["retries"], "retries per transaction")
    nulls = []
    for row in zip(
        cols["outcome"], cols["steps_applied"], cols["compensations_applied"], cols["retries"], cols["messages"],
        strict=True,
    ):  # fmt: skip
        outcome, applied, comp, retries, messages = row
        extra = messages - 2 * (applied + (outcome == "compensated") + comp + retries)
        assert extra in ((0, 2) if outcome == "compensated" else (0,)), row
        nulls.append(extra // 2)
    assert_mean_close(np.asarray(nulls, dtype=float), theory["null"], "null compensations")


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_order_saga_message_counts_exact(seed: int) -> None:
    """Zero loss and duplication, no transient failures: messages are counted exactly.

    A saga that commits sends a command and receives a reply per step:
    2 * 3 = 6. A saga refused at step k (1-based) sent k commands and got k
    replies, then compensated the k - 1 steps before it, one command and one
    reply each: 2k + 2(k - 1) = 4k - 2. The per-run total must match the
    network's own counter.
    """
    business = (0.2, 0.2, 0.2)
    zero = (0.0, 0.0, 0.0)
    out = run_once(saga_scenario(ORDER_STEPS, business, zero, zero, duration=2.0), "orchestration", seed)
    assert_clean(out)
    cols = out.transactions
    kinds = set()
    for outcome, applied, messages in zip(cols["outcome"], cols["steps_applied"], cols["messages"], strict=True):
        if outcome == "committed":
            assert messages == 6
        else:
            k = applied + 1
            assert messages == 4 * k - 2
        kinds.add((outcome, applied))
    # All four shapes occur (each has probability >= 0.128, n ~ 1000), so every branch was exercised.
    assert kinds == {("compensated", 0), ("compensated", 1), ("compensated", 2), ("committed", 3)}
    assert sum(cols["messages"]) == out.summary["network_messages"]
    assert out.summary["network_lost"] == 0 and out.summary["network_duplicated"] == 0


def test_fault_free_order_saga() -> None:
    """No failure of any kind: every saga commits with 3 steps, 6 messages and no retry or compensation.

    Its latency is then 6 network hops of 0.5 ms plus 3 exponential service
    times of mean 1 ms (1000 workers per participant at a load of 0.5 worker:
    nobody ever queues), so latency - 3 ms is Gamma(3, 1 ms), and the
    latencies of different sagas are independent. Kolmogorov-Smirnov test
    against that law, p > 1e-4 (false-failure probability 1e-4).
    """
    zero = (0.0, 0.0, 0.0)
    model = Model(saga_scenario(ORDER_STEPS, zero, zero, zero, duration=4.0), "orchestration", 5)
    out = model.run()
    assert_clean(out)
    cols = out.transactions
    assert out.summary["committed_rate"] == 1.0
    assert set(cols["steps_applied"]) == {3}
    assert set(cols["compensations_applied"]) == {0}
    assert set(cols["retries"]) == {0}
    assert set(cols["messages"]) == {6}
    # One attempt per step per transaction at each participant.
    n = out.summary["transactions"]
    assert {name: p.attempts for name, p in model.participants.items()} == dict.fromkeys(model.participants, n)
    service = np.asarray(cols["latency"], dtype=float) - 6 * 0.0005
    assert service.min() > 0
    p_value = stats.kstest(service, stats.gamma(a=3, scale=0.001).cdf).pvalue
    assert p_value > ALPHA, f"saga latency is not 6 hops + Gamma(3, 1 ms): KS p = {p_value}"
