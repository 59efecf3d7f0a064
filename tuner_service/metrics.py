"""Prometheus metrics of the service, read from the database at scrape time.

Every number is a query of the shared database (through :class:`Repository` and, for trials,
:class:`TrialReads`: counts and the duration histogram computed by the database), so any API
process reports the state of the whole fleet, and a restart loses nothing. Nothing is global:
:func:`build_registry` makes a fresh ``CollectorRegistry`` per app.

Series (all gauges, except the histogram):

* ``tuner_studies{status}`` -- studies by status (every status, 0 when none).
* ``tuner_trials{state}`` -- the service's Optuna trials by state (running, waiting, complete,
  pruned, fail).
* ``tuner_trial_duration_seconds`` -- histogram of finished trials' durations (start to end).
* ``tuner_workers_alive`` -- registered workers that are heartbeating.
* ``tuner_trials_waiting_to_be_claimed`` -- budget left in queued and running studies: trials
  that workers can still claim (Optuna's WAITING trials -- warm starts and re-queued trials --
  are handed out within this budget; they are not added on top).
* ``tuner_database_up`` -- 1 when the queries above succeeded, else 0 (and nothing else is
  reported for that scrape).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from optuna.trial import TrialState
from prometheus_client.core import CollectorRegistry, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from .reads import TrialReads
from .repository import Repository
from .states import StudyStatus, WorkerStatus

log = logging.getLogger(__name__)

#: Upper bounds (seconds) of the trial duration histogram: a second to a day.
DURATION_BUCKETS: tuple[float, ...] = (
    1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400,
)


def _le(bound: float) -> str:
    return str(float(bound))


class ServiceCollector(Collector):
    """Collects the service's metrics from the database on each scrape."""

    def __init__(self, repo: Repository, reads: TrialReads) -> None:
        self.repo = repo
        self.reads = reads

    def describe(self) -> Iterator[Metric]:
        return iter(())  # no queries at registration time

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("tuner_database_up", "1 when the database answered this scrape.")
        try:
            metrics = self._query()
        except Exception as exc:  # report the outage instead of failing the scrape
            log.warning("metrics: database query failed: %s", exc)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from metrics

    def _query(self) -> list[Metric]:
        snap = self.repo.metrics_snapshot()
        fleet = self.reads.fleet_trials(DURATION_BUCKETS)
        studies, trials = snap.studies_by_status, fleet.by_state
        workers, claimable = snap.workers_by_status, snap.claimable_budget

        g_studies = GaugeMetricFamily("tuner_studies", "Studies by status.", labels=["status"])
        for status in StudyStatus:
            g_studies.add_metric([status.value], float(studies.get(status.value, 0)))

        g_trials = GaugeMetricFamily(
            "tuner_trials", "Trials of the service's studies by Optuna state.", labels=["state"]
        )
        for state in TrialState:
            g_trials.add_metric([state.name.lower()], float(trials.get(state.name, 0)))

        h = HistogramMetricFamily(
            "tuner_trial_duration_seconds",
            "Duration of finished trials (complete, pruned, failed), start to end.",
        )
        hist = fleet.durations
        buckets = [(_le(b), float(n)) for b, n in zip(hist.bounds, hist.le, strict=True)]
        buckets.append(("+Inf", float(hist.count)))
        h.add_metric([], buckets, sum_value=hist.total)

        g_workers = GaugeMetricFamily(
            "tuner_workers_alive", "Registered workers that are heartbeating."
        )
        g_workers.add_metric([], float(workers.get(WorkerStatus.ALIVE.value, 0)))

        g_wait = GaugeMetricFamily(
            "tuner_trials_waiting_to_be_claimed",
            "Trials that queued and running studies can still hand out (budget left).",
        )
        g_wait.add_metric([], float(claimable))
        return [g_studies, g_trials, h, g_workers, g_wait]


def build_registry(repo: Repository, reads: TrialReads) -> CollectorRegistry:
    """A fresh registry holding only the service's collector (one per app)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(repo, reads))
    return registry
