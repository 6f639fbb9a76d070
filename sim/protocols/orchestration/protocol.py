"""The orchestration saga: a central coordinator commands each step.

For each transaction the orchestrator records the saga in its durable log,
then sends one command at a time over the network and waits for the reply or
its timeout:

* forward steps in order; a success moves to the next step;
* a transient error or a timeout is retried with the ``retry`` policy, the same
  idempotency key on every attempt (unless ``idempotency_keys = false``);
* a business refusal, or a compensatable step whose attempts are exhausted,
  starts compensation: the steps known to be applied, and (with
  ``compensate_uncertain``) the steps whose outcome is unknown, are
  compensated one at a time in reverse order, each retried with
  ``compensation_retry``; a compensation that exhausts its attempts is given
  up (the naive design logs it and moves on);
* the pivot (with ``compensate_uncertain``) is retried until it succeeds or
  is refused: past it there is no way back, so guessing would be wrong either
  way; retriable steps after the pivot are retried until they succeed, and a
  retriable step that is *refused* ends the saga unfinished (belief
  ``failed``): a refusal is a final answer (the same command gets the same
  answer), so such a saga cannot complete, and the checker judges it
  ``inconsistent`` (``incomplete_after_pivot``).

A step's outcome is unknown from the moment its command is sent: a timeout
proves nothing, and neither does an error reply, because the network may have
delivered a duplicate of the command, and an attempt sent before a crash may
still be queued at the participant. Only a refusal under an idempotency key is
final, since the participant refuses every later copy of that key too. The
naive design (``compensate_uncertain = false``) assumes that a step that did
not answer ok was not applied.

A reply is matched to the attempt that is waiting for it; replies to abandoned
attempts are dropped, as an RPC client drops a response after its deadline.

The saga record is the durable log: it is updated at the instant each command
is sent (the log write precedes the send), so a crash loses only timers and the
wait for replies. With ``recovery = true`` a restarted orchestrator resumes
every unfinished saga by resending its current command; without it, those
sagas stay unfinished and end the run ``stuck``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sim.protocols.base import KEY_STRIDE, CoordinatorView
from sim.protocols.retry import Backoff
from sim.world.effects import COMPENSATE, FORWARD
from sim.world.messages import REP, REQ, Reply, Request, new_record
from sim.world.network import command_role
from sim.world.node import Node
from sim.world.participant import ERROR, OK, REFUSED
from sim.world.timers import DeadlineQueue
from sim.world.trace import IN, OUT

if TYPE_CHECKING:
    from sim.protocols.orchestration.spec import OrchestratorSpec
    from sim.runner import Model
    from sim.scenario import TransactionSpec
    from sim.world.core import World
    from sim.world.network import Network

RUNNING_FORWARD = 0
COMPENSATING = 1
DONE = 2

_COMPENSATABLE = "compensatable"
_PIVOT = "pivot"
_RETRIABLE = "retriable"


class Saga:
    """One transaction's saga record (the orchestrator's durable log entry)."""

    __slots__ = (
        "txn", "started", "phase", "step", "attempt", "token", "epoch",
        "confirmed", "uncertain", "plan", "pos", "finished", "belief",
        "retries", "gave_up",
    )  # fmt: skip

    def __init__(self, txn: int, started: float, epoch: int) -> None:
        self.txn = txn
        self.started = started
        self.phase = RUNNING_FORWARD
        self.step = 0
        self.attempt = 0
        self.token = 0
        self.epoch = epoch
        self.confirmed = 0  # bit j: step j confirmed applied
        self.uncertain = 0  # bit j: step j's outcome unknown
        self.plan: list[int] | tuple[()] = ()
        self.pos = 0
        self.finished = float("nan")
        self.belief = ""
        self.retries = 0
        self.gave_up = 0


class Orchestrator(Node):
    """The saga orchestrator node (its name is ``orchestrator``)."""

    def __init__(
        self,
        world: World,
        network: Network,
        spec: OrchestratorSpec,
        transaction: TransactionSpec,
    ) -> None:
        super().__init__(world, "orchestrator")
        self.network = network
        self.spec = spec
        self.targets = [s.participant for s in transaction.steps]
        self.kinds = [s.kind for s in transaction.steps]
        self.labels = [(s.name, s.compensation or "") for s in transaction.steps]
        self.n_steps = len(transaction.steps)
        self.log: dict[int, Saga] = {}
        self.retry = Backoff(spec.retry, world.streams.uniform("orchestrator.retry_jitter"))
        self.comp_retry = Backoff(spec.compensation_retry, world.streams.uniform("orchestrator.compensation_jitter"))
        self.keys = spec.idempotency_keys
        self.compensate_uncertain = spec.compensate_uncertain
        self.deadlines = DeadlineQueue(world, spec.timeout, self._live, self._on_timeout, owner=self)
        self.timeouts = 0
        self.recovered = 0

    # ------------------------------------------------------------ driving

    def start(self, txn: int) -> bool:
        if not self.up or self.paused:
            return False  # a frozen or crashed orchestrator accepts nothing
        saga = Saga(txn, self.world.env._now, self.epoch)
        self.log[txn] = saga
        if self.world.tracer.on:
            self.world.tracer.emit(self.world.now, self.name, "begin", txn)
        self._send(saga)
        return True

    def _send(self, saga: Saga) -> None:
        saga.attempt += 1
        if saga.attempt > 1:
            saga.retries += 1
        saga.token += 1
        if saga.phase == RUNNING_FORWARD:
            step = saga.step
            op = FORWARD
            saga.uncertain |= 1 << step  # once sent, it may be applied
        else:
            step = saga.plan[saga.pos]
            op = COMPENSATE
        key = saga.txn * KEY_STRIDE + step if self.keys else None
        if self.world.tracer.on:
            self.world.tracer.emit(
                self.world.now, self.name, "command", saga.txn, self.labels[step][op],
                f"attempt {saga.attempt} to {self.targets[step]}",
                peer=self.targets[step], message=REQ, direction=OUT, attempt=saga.attempt,
            )  # fmt: skip
        msg = new_record(Request, (REQ, self.name, saga.txn, step, op, key, saga.token))  # request(), inlined (hot)
        self.network.send(self.name, self.targets[step], msg, command_role(step, op), saga.attempt)
        self.deadlines.add((saga, saga.token))

    def _live(self, item: tuple[Saga, int]) -> bool:
        saga, token = item
        return saga.token == token and saga.epoch == self.epoch and saga.phase != DONE

    def handle(self, msg: Reply) -> None:
        saga = self.log.get(msg.txn)
        if saga is None or saga.token != msg.token or saga.epoch != self.epoch or saga.phase == DONE:
            return  # a reply to an abandoned attempt, or to a saga nobody drives
        saga.token += 1  # the attempt is answered: its deadline and duplicates go stale
        status = msg.status
        if self.world.tracer.on:
            self.world.tracer.emit(
                self.world.now, self.name, "reply", saga.txn, self.labels[msg.step][msg.op], status,
                peer=msg.src, message=REP, direction=IN, attempt=saga.attempt,
            )  # fmt: skip
        if saga.phase == RUNNING_FORWARD:
            if status == OK:
                saga.confirmed |= 1 << saga.step
                self._next_step(saga)
            elif status == REFUSED:
                if self.keys:
                    saga.uncertain &= ~(1 << saga.step)  # every copy of this key is refused
                if self.kinds[saga.step] == _RETRIABLE:
                    self._refused_past_pivot(saga)
                else:
                    self._compensate(saga)
            else:
                self._attempt_failed(saga)
        elif status == ERROR:
            self._attempt_failed(saga)
        else:
            self._next_compensation(saga)

    def _refused_past_pivot(self, saga: Saga) -> None:
        # A refusal is the participant's final answer to this command: asking
        # again gets the same answer, and past the pivot there is no way back.
        # The saga cannot complete; it ends here, for an operator to repair.
        if self.world.tracer.on:
            self.world.tracer.emit(
                self.world.now, self.name, "cannot-complete", saga.txn, self.labels[saga.step][FORWARD],
                "a retriable step was refused: its refusal is final",
            )  # fmt: skip
        self._finish(saga, "failed")

    def _on_timeout(self, item: tuple[Saga, int]) -> None:
        saga, _ = item
        saga.token += 1
        self.timeouts += 1
        if self.world.tracer.on:
            step = saga.step if saga.phase == RUNNING_FORWARD else saga.plan[saga.pos]
            self.world.tracer.emit(
                self.world.now,
                self.name,
                "timeout",
                saga.txn,
                self.labels[step][saga.phase],
                f"attempt {saga.attempt}",
                peer=self.targets[step],
                attempt=saga.attempt,
            )
        self._attempt_failed(saga)

    def _attempt_failed(self, saga: Saga) -> None:
        if saga.phase == RUNNING_FORWARD:
            kind = self.kinds[saga.step]
            if (
                saga.attempt < self.retry.limit
                or kind == _RETRIABLE
                or (kind == _PIVOT and self.compensate_uncertain and (saga.uncertain >> saga.step) & 1)
            ):
                self.world.at(self.retry.wait(saga.attempt + 1), self._resend, (saga, saga.token))
            else:
                self._compensate(saga)
        elif saga.attempt < self.comp_retry.limit:
            self.world.at(self.comp_retry.wait(saga.attempt + 1), self._resend, (saga, saga.token))
        else:
            saga.gave_up += 1
            if self.world.tracer.on:
                step = saga.plan[saga.pos]
                self.world.tracer.emit(self.world.now, self.name, "give-up", saga.txn, self.labels[step][COMPENSATE])
            self._next_compensation(saga)

    def _resend(self, item: tuple[Saga, int]) -> None:
        if self.paused:
            self.hold(self._resend, item)
            return
        if self._live(item):
            saga, _ = item
            self._send(saga)

    def _next_step(self, saga: Saga) -> None:
        saga.step += 1
        saga.attempt = 0
        if saga.step < self.n_steps:
            self._send(saga)
        else:
            self._finish(saga, "committed")

    def _compensate(self, saga: Saga) -> None:
        kinds = self.kinds
        plan = [
            j
            for j in range(saga.step, -1, -1)
            if kinds[j] == _COMPENSATABLE
            and ((saga.confirmed >> j) & 1 or (self.compensate_uncertain and (saga.uncertain >> j) & 1))
        ]
        saga.phase = COMPENSATING
        saga.plan = plan
        saga.pos = 0
        saga.attempt = 0
        if self.world.tracer.on:
            self.world.tracer.emit(
                self.world.now, self.name, "compensate", saga.txn, self.labels[saga.step][FORWARD],
                "plan: " + ", ".join(self.labels[j][COMPENSATE] for j in plan),
            )  # fmt: skip
        if plan:
            self._send(saga)
        else:
            self._finish(saga, "compensated")

    def _next_compensation(self, saga: Saga) -> None:
        saga.pos += 1
        saga.attempt = 0
        if saga.pos < len(saga.plan):
            self._send(saga)
        else:
            self._finish(saga, "compensated" if saga.gave_up == 0 else "failed")

    def _finish(self, saga: Saga, belief: str) -> None:
        saga.phase = DONE
        saga.finished = self.world.env._now
        saga.belief = belief
        if self.world.tracer.on:
            self.world.tracer.emit(self.world.now, self.name, "end", saga.txn, None, belief)

    # ------------------------------------------------------------ crashes

    def on_crash(self) -> None:
        self.deadlines.clear()

    def on_restart(self) -> None:
        if not self.spec.recovery:
            return
        for saga in self.log.values():
            if saga.phase != DONE:
                saga.epoch = self.epoch
                self.recovered += 1
                if self.world.tracer.on:
                    self.world.tracer.emit(self.world.now, self.name, "recover", saga.txn)
                self._send(saga)

    # ------------------------------------------------------------ results

    def view(self, txn: int) -> CoordinatorView:
        saga = self.log[txn]
        return CoordinatorView(saga.phase == DONE, saga.finished, saga.belief or "running", saga.retries)


class OrchestrationProtocol:
    """The runner's handle on an orchestration saga."""

    name = "orchestration"
    #: every piece of a saga's pending work is counted by the engine
    #: (commands and replies through the network, participants' jobs); its
    #: own retry and timeout timers do nothing once the saga is done
    settles = True

    def __init__(self, world: World, network: Network, spec: OrchestratorSpec, transaction: TransactionSpec) -> None:
        self.orchestrator = Orchestrator(world, network, spec, transaction)
        network.attach(self.orchestrator)
        #: give-ups of the sagas already forgotten (see :meth:`forget`)
        self.forgotten_gave_up = 0

    def start(self, txn: int) -> bool:
        return self.orchestrator.start(txn)

    def view(self, txn: int) -> CoordinatorView:
        return self.orchestrator.view(txn)

    def nodes(self) -> list[Node]:
        return [self.orchestrator]

    def forget(self, txn: int) -> None:
        """Drop the saga record of a settled transaction (judged already)."""
        self.forgotten_gave_up += self.orchestrator.log.pop(txn).gave_up

    def summary_extra(self) -> dict[str, Any]:
        orchestrator = self.orchestrator
        return {
            "timeouts": orchestrator.timeouts,
            "recovered": orchestrator.recovered,
            "gave_up": self.forgotten_gave_up + sum(s.gave_up for s in orchestrator.log.values()),
        }


def build(model: Model) -> OrchestrationProtocol:
    """The protocol on a run's model (see :mod:`sim.protocols.registry`)."""
    s = model.scenario
    return OrchestrationProtocol(model.world, model.network, s.orchestrator, s.transaction)
