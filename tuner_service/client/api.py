"""``TunerClient`` (the API at a URL) and ``Study`` (one study of it): see the package doc."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from pydantic import BaseModel

from ..api.schemas import (
    BestTrialPublic,
    StudiesPublic,
    StudyDetail,
    StudyPublic,
    TrialPublic,
    TrialsPublic,
    WorkerPublic,
    WorkersPublic,
)
from ..spec_file import read_spec_file
from ..states import StudyStatus
from .ensemble import EnsembleInfo
from .errors import NotFoundError, raise_for
from .progress import ProgressBar, progress_info

if TYPE_CHECKING:
    import pandas

M = TypeVar("M", bound=BaseModel)

#: Evaluation states in which a worker has yet to measure the best model on the test split.
EVALUATION_PENDING = ("pending", "running")


class TunerClient:
    """The API at ``url``; ``token`` is sent as ``Authorization: Bearer`` (TUNER_API_TOKEN).

    Extra keyword arguments go to :class:`httpx.Client` (e.g. ``transport``, ``verify``).
    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self, url: str, token: str | None = None, *, timeout: float = 30.0, **httpx_kw: Any
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout, **httpx_kw
        )

    def __enter__(self) -> TunerClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- plumbing -----------------------------------------------------------------------
    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """One API call; raises :class:`ApiError` (or a subclass) on an error status."""
        r = self._http.request(method, path, **kw)
        raise_for(r)
        return r

    def _get(self, model: type[M], path: str, **params: Any) -> M:
        clean = {k: v for k, v in params.items() if v is not None}
        return model.model_validate(self.request("GET", path, params=clean).json())

    def _post(self, model: type[M], path: str, body: Any = None) -> M:
        return model.model_validate(self.request("POST", path, json=body).json())

    # --- studies ------------------------------------------------------------------------
    def submit(self, spec: Mapping[str, Any] | BaseModel | str | Path) -> Study:
        """Queue a study from a spec (a dict, a ``StudySpec``, or a JSON/YAML file's path).

        Raises:
            ValidationError: the spec is invalid (``problems`` names each field).
            ConflictError: a study of that name exists.
        """
        if isinstance(spec, (str, Path)):
            body: Any = read_spec_file(spec)
        elif isinstance(spec, BaseModel):
            body = spec.model_dump(mode="json")
        else:
            body = dict(spec)
        created = self._post(StudyPublic, "/studies", body)
        return self.study(created.id)

    def studies(self, status: str | None = None, page_size: int = 100) -> list[StudyPublic]:
        """Every study (newest first, as the API lists them), optionally of one status."""
        return list(
            _pages(lambda offset: self._get(
                StudiesPublic, "/studies", status=status, limit=page_size, offset=offset
            ))
        )

    def study(self, study_id: int) -> Study:
        """A handle on study ``study_id`` (loaded now; :meth:`Study.refresh` reloads it).

        Raises:
            NotFoundError: no such study.
        """
        return Study(self, self._get(StudyDetail, f"/studies/{study_id}"))

    def workers(self) -> list[WorkerPublic]:
        return self._get(WorkersPublic, "/workers").data


def _pages(fetch: Any) -> Iterator[Any]:
    """Items of a ``{data, count}`` listing, page after page until ``count`` is reached."""
    offset = 0
    while True:
        page = fetch(offset)
        yield from page.data
        offset += len(page.data)
        if not page.data or offset >= page.count:
            return


class Study:
    """One study of the service. :attr:`detail` is the last :meth:`refresh`'s view."""

    def __init__(self, client: TunerClient, detail: StudyDetail) -> None:
        self.client = client
        self.detail = detail
        self.id = detail.id

    def __repr__(self) -> str:
        return f"Study(id={self.id}, name={self.name!r}, status={self.status!r})"

    @property
    def name(self) -> str:
        return self.detail.name

    @property
    def status(self) -> str:
        return self.detail.status

    def refresh(self) -> StudyDetail:
        self.detail = self.client._get(StudyDetail, f"/studies/{self.id}")
        return self.detail

    def trials(self, state: str | None = None, page_size: int = 100) -> Iterator[TrialPublic]:
        """Every trial (optionally of one state: running, waiting, complete, pruned, fail),
        fetched a page at a time."""
        path = f"/studies/{self.id}/trials"
        return _pages(lambda offset: self.client._get(
            TrialsPublic, path, state=state, limit=page_size, offset=offset
        ))

    def best(self) -> BestTrialPublic:
        """The best trial, with ``test_metrics`` once measured (extra fields: ``number``,
        ``params``, ``value``, ``user_attrs``, ...; several objectives: ``trials``).

        Raises:
            NotFoundError: no trial has finished yet.
        """
        return self.client._get(BestTrialPublic, f"/studies/{self.id}/best")

    def is_done(self) -> bool:
        """Finished (completed, cancelled, failed), and the final evaluation is over."""
        d = self.detail
        return StudyStatus(d.status).is_final and d.evaluation_state not in EVALUATION_PENDING

    def wait(
        self, progress: bool = True, interval: float = 2.0, timeout: float | None = None
    ) -> StudyDetail:
        """Poll until :meth:`is_done`; with ``progress`` show finished trials out of the
        budget (a rich bar in a terminal, tqdm's widget in a notebook).

        Raises:
            TimeoutError: still not done after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with ProgressBar(self.name, self.detail.n_trials, enabled=progress) as show:
            while True:
                d = self.refresh()
                show(d.budget.get("finished", 0), progress_info(d))
                if self.is_done():
                    return d
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"study {self.id} still {d.status} after {timeout}s")
                time.sleep(interval)

    def pause(self) -> StudyPublic:
        return self._move("pause")

    def resume(self) -> StudyPublic:
        return self._move("resume")

    def cancel(self) -> StudyPublic:
        return self._move("cancel")

    def _move(self, action: str) -> StudyPublic:
        out = self.client._post(StudyPublic, f"/studies/{self.id}/{action}")
        self.refresh()
        return out

    def enqueue(self, params: Mapping[str, Any]) -> str:
        """Warm start: ``params`` run before sampled trials.

        Raises:
            ValidationError: the params do not fit the study's space.
            ConflictError: the study is finished.
        """
        r = self.client.request("POST", f"/studies/{self.id}/trials", json={"params": params})
        return str(r.json()["message"])

    def download_model(self, path: str | Path = ".") -> Path:
        """Write the best trial's ``.keras`` model to ``path`` (a folder keeps the server's
        file name); returns the file's path.

        Raises:
            NotFoundError: no finished trial, or no saved model (grid studies keep none).
        """
        return self._download(f"/studies/{self.id}/best/model", path)

    def ensemble(self) -> EnsembleInfo | None:
        """The ensemble of the best trials (members, weights, method, validation and test
        metrics next to the best single trial); None while the study has none (not
        completed, still being evaluated, or ensembles are off)."""
        try:
            return self.client._get(EnsembleInfo, f"/studies/{self.id}/ensemble")
        except NotFoundError:
            return None

    def download_ensemble(self, path: str | Path = ".") -> Path:
        """Write the ensemble's ``.keras`` model to ``path`` (a folder keeps the server's
        file name ``study{id}-ensemble.keras``); returns the file's path.

        Raises:
            NotFoundError: the study has no ensemble, or its build saved no model.
        """
        return self._download(f"/studies/{self.id}/ensemble/model", path)

    def build_ensemble(self, size: int = 5, method: str = "weighted") -> str:
        """Ask for the ensemble of a completed study again with ``size`` members weighted by
        ``method`` (``mean``, ``weighted``, ``greedy``); a worker builds it at its next poll,
        so :meth:`wait` then :meth:`ensemble`. Returns the evaluation state (``pending``).

        Raises:
            ValidationError: a bad size or method (the problem names the field).
            ConflictError: the study has not completed, keeps no models, has several
                objectives, or its final evaluation is still running.
        """
        body = {"size": size, "method": method}
        r = self.client.request("POST", f"/studies/{self.id}/ensemble", json=body)
        self.refresh()
        return str(r.json()["evaluation_state"])

    def download_report(self, path: str | Path = ".") -> Path:
        """Write the study's self-contained HTML report (``GET /studies/{id}/report``)."""
        return self._download(f"/studies/{self.id}/report", path)

    def _download(self, url: str, path: str | Path) -> Path:
        r = self.client.request("GET", url)
        out = Path(path)
        if out.is_dir():
            out = out / _attachment_name(r, f"study{self.id}")
        out.write_bytes(r.content)
        return out

    def trials_dataframe(self) -> pandas.DataFrame:
        """Every trial as a pandas DataFrame: ``number``, ``state``, ``value`` (or
        ``values_0``, ...), ``duration_s``, ``worker``, one ``params_NAME`` column per
        hyperparameter, like ``optuna.Study.trials_dataframe``.

        Raises:
            ImportError: pandas is not installed.
        """
        import pandas

        rows = []
        for t in self.trials():
            row: dict[str, Any] = {"number": t.number, "state": t.state}
            if t.values is not None and len(t.values) > 1:
                row.update({f"values_{i}": v for i, v in enumerate(t.values)})
            else:
                row["value"] = t.value
            row.update(
                datetime_start=t.datetime_start, datetime_complete=t.datetime_complete,
                duration_s=t.duration_s, worker=t.worker,
            )
            row.update({f"params_{k}": v for k, v in t.params.items()})
            rows.append(row)
        return pandas.DataFrame(rows)


def _attachment_name(r: httpx.Response, default: str) -> str:
    disposition = r.headers.get("content-disposition", "")
    if 'filename="' in disposition:
        return Path(disposition.split('filename="', 1)[1].split('"', 1)[0]).name
    return default
