"""The state tables (tuner_service/states.py): each machine's every allowed move is made through
the repository's compare-and-set writes, and a forbidden one is refused."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from support import tiny_spec

from tuner_service.errors import InvalidTransitionError
from tuner_service.models import LeaseRow, StudyRow, WorkerRow
from tuner_service.repository import Repository, utcnow
from tuner_service.service import Services
from tuner_service.states import (
    EVALUATIONS,
    LEASES,
    STUDIES,
    WORKERS,
    EvaluationState,
    LeaseState,
    StateMachine,
    StudyStatus,
    WorkerStatus,
)


@pytest.mark.parametrize("machine", [STUDIES, LEASES, WORKERS, EVALUATIONS])
def test_table_is_closed_and_reachable(machine: StateMachine[Any]) -> None:
    states = set(type(machine.initial))
    assert set(machine.moves) == states  # every state has a row
    reached = {machine.initial}
    frontier = [machine.initial]
    while frontier:
        for nxt in machine.moves[frontier.pop()]:
            if nxt not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    assert reached == states  # every state can be reached from the initial one
    for a, b in machine.transitions():
        machine.check(a, b)
        assert a in machine.sources(b)
    # a table with end states refuses to leave them (the evaluation has none: an ensemble asked
    # for on demand evaluates a finished study again)
    for final in [s for s in states if machine.is_final(s)][:1]:
        with pytest.raises(InvalidTransitionError):
            machine.check(final, machine.initial)


def _study(services: Services, name: str) -> int:
    return services.create_study(tiny_spec(name)).id


def _force(repo: Repository, row: type, key: Any, **values: Any) -> None:
    with repo.session() as s:
        s.execute(sa.update(row).where(row.id == key).values(**values))  # type: ignore[attr-defined]


def test_study_moves(services: Services) -> None:
    repo = services.repo
    for i, (a, b) in enumerate(STUDIES.transitions()):
        sid = _study(services, f"s{i}")
        _force(repo, StudyRow, sid, status=a.value)
        assert repo.set_study_status(sid, target=b, expected=[a]), (a, b)
        assert repo.get_study(sid).status == b.value  # type: ignore[union-attr]
    # forbidden: a completed study cannot run again
    sid = _study(services, "done")
    _force(repo, StudyRow, sid, status=StudyStatus.COMPLETED.value)
    with pytest.raises(InvalidTransitionError):
        repo.set_study_status(sid, target=StudyStatus.RUNNING, expected=[StudyStatus.COMPLETED])
    # the default expected states come from the table: a completed study does not fail
    assert not repo.set_study_status(sid, target=StudyStatus.FAILED)
    assert repo.get_study(sid).status == StudyStatus.COMPLETED.value  # type: ignore[union-attr]


def _worker(repo: Repository, wid: str) -> None:
    repo.register_worker(worker_id=wid, host="h", pid=1, device="cpu", info={})


def test_lease_moves(services: Services) -> None:
    repo = services.repo
    _worker(repo, "w")
    sid = _study(services, "leases")
    _force(repo, StudyRow, sid, max_parallel=10)
    done: set[tuple[LeaseState, LeaseState]] = set()
    for trial_id, target in ((1, LeaseState.FINISHED), (2, LeaseState.LOST)):
        got = repo.try_claim(sid, "w")
        assert got is not None
        lease = got[0]
        assert lease.state == LEASES.initial.value
        repo.attach_trial(lease.id, trial_id=trial_id, trial_number=trial_id)
        assert repo.end_lease(lease.id, target)
        done.add((LeaseState.ACTIVE, target))
        # forbidden: an ended lease is not ended again (compare-and-set refuses)
        assert not repo.end_lease(lease.id, LeaseState.LOST)
    repo.count_lost_lease_as_finished(sid, 2)  # the declared LOST -> FINISHED move
    done.add((LeaseState.LOST, LeaseState.FINISHED))
    assert done == set(LEASES.transitions())
    assert repo.lease_counts(sid).finished == 2
    # forbidden by the table: a lease never becomes active again
    with pytest.raises(InvalidTransitionError):
        repo.end_lease(lease.id, LeaseState.ACTIVE)


def test_worker_moves(services: Services) -> None:
    repo = services.repo
    done: set[tuple[WorkerStatus, WorkerStatus]] = set()
    _worker(repo, "a")
    assert repo.set_worker_status("a", WorkerStatus.STOPPED)
    done.add((WorkerStatus.ALIVE, WorkerStatus.STOPPED))
    _worker(repo, "b")
    future = utcnow() + timedelta(seconds=60)
    assert repo.mark_silent_workers_dead(future) == ["b"]
    done.add((WorkerStatus.ALIVE, WorkerStatus.DEAD))
    assert not repo.heartbeat("b")  # a dead worker's beat is refused
    _worker(repo, "b")  # it registers again
    done.add((WorkerStatus.DEAD, WorkerStatus.ALIVE))
    assert repo.heartbeat("b")
    assert repo.mark_silent_workers_dead(future) == ["b"]
    assert repo.set_worker_status("b", WorkerStatus.STOPPED)
    done.add((WorkerStatus.DEAD, WorkerStatus.STOPPED))
    assert done == set(WORKERS.transitions())
    # forbidden: a stopped worker neither dies nor comes back
    assert not repo.set_worker_status("a", WorkerStatus.DEAD)
    with pytest.raises(InvalidTransitionError):
        _worker(repo, "a")
    with repo.session() as s:
        assert s.get(WorkerRow, "a").status == WorkerStatus.STOPPED.value  # type: ignore[union-attr]


def test_evaluation_moves(services: Services) -> None:
    repo = services.repo
    _worker(repo, "w")
    done: set[tuple[EvaluationState, EvaluationState]] = set()
    for i, end in enumerate((EvaluationState.DONE, EvaluationState.FAILED)):
        sid = _study(services, f"e{i}")
        _force(repo, StudyRow, sid, n_trials=1)
        got = repo.try_claim(sid, "w")
        assert got is not None
        assert repo.end_lease(got[0].id, LeaseState.FINISHED)
        assert repo.complete_if_done(sid) == "budget spent"
        assert repo.get_study(sid).evaluation_state == EVALUATIONS.initial.value  # type: ignore[union-attr]
        # forbidden: a pending evaluation cannot be done before a worker took it
        assert not repo.end_evaluation(sid, "w", end, {"x": 1})
        assert repo.take_evaluation(sid, "w")
        done.add((EvaluationState.PENDING, EvaluationState.RUNNING))
        assert not repo.take_evaluation(sid, "w")  # taken once
        if end is EvaluationState.DONE:  # its worker lost: the reaper gives it back
            _force(repo, WorkerRow, "w", status=WorkerStatus.DEAD.value)
            assert repo.take_back_evaluations(repo.database_time(), max_attempts=3) == [
                (sid, EvaluationState.PENDING)]
            done.add((EvaluationState.RUNNING, EvaluationState.PENDING))
            _force(repo, WorkerRow, "w", status=WorkerStatus.ALIVE.value)
            assert repo.take_evaluation(sid, "w", {"asked": "again"})
            assert repo.get_study(sid).evaluation == {"asked": "again"}  # type: ignore[union-attr]
        assert not repo.end_evaluation(sid, "other", end, {"x": 1})  # not its holder
        assert repo.end_evaluation(sid, "w", end, {"x": 1})
        done.add((EvaluationState.RUNNING, end))
        assert repo.get_study(sid).evaluation_state == end.value  # type: ignore[union-attr]
        # asked again (an on-demand ensemble): pending, from a finished evaluation only
        assert repo.reopen_evaluation(sid, {"ensemble_request": {"size": 2}})
        done.add((end, EvaluationState.PENDING))
        assert not repo.reopen_evaluation(sid, {})  # pending already
        row = repo.get_study(sid)
        assert row is not None and row.evaluation_attempts == 0
    assert done == set(EVALUATIONS.transitions())
    with repo.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(LeaseRow)) == 2


def test_an_evaluation_lost_too_often_fails_saying_why(services: Services) -> None:
    repo = services.repo
    _worker(repo, "w")
    sid = _study(services, "lost-eval")
    _force(repo, StudyRow, sid, status=StudyStatus.COMPLETED.value,
           evaluation_state=EvaluationState.PENDING.value)
    assert repo.take_evaluation(sid, "w")
    # alive and beating: not taken back
    assert repo.take_back_evaluations(repo.database_time() - timedelta(seconds=60),
                                      max_attempts=1) == []
    # silent since before the cutoff, and already taken max_attempts times: it fails
    assert repo.take_back_evaluations(repo.database_time() + timedelta(seconds=1),
                                      max_attempts=1) == [(sid, EvaluationState.FAILED)]
    row = repo.get_study(sid)
    assert row is not None and row.evaluation_state == EvaluationState.FAILED.value
    assert row.evaluation == {"error": "worker lost during the evaluation (1 attempts)"}
    assert row.evaluation_worker_id is None
