"""A Python client of the REST API, for notebooks and scripts (sync, httpx).

```python
from tuner_service.client import TunerClient

client = TunerClient("http://tuner:8000", token="...")
study = client.submit("examples/digits_optuna.json")
study.wait()                      # a progress bar until the study (and its evaluation) ends
study.best().params
study.download_model("best.keras")
df = study.trials_dataframe()     # needs pandas
```

Results are the API's own response models (:mod:`tuner_service.api.schemas`). An error
response raises :class:`ApiError` (or a subclass per status); a 422 carries the list of
problems, each with its JSON path, in :attr:`ApiError.problems`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from pydantic import BaseModel

from .api.schemas import (
    BestTrialPublic,
    StudiesPublic,
    StudyDetail,
    StudyPublic,
    TrialPublic,
    TrialsPublic,
    WorkerPublic,
    WorkersPublic,
)
from .spec_file import read_spec_file
from .states import StudyStatus

if TYPE_CHECKING:
    import pandas

M = TypeVar("M", bound=BaseModel)

#: Evaluation states in which a worker has yet to measure the best model on the test split.
EVALUATION_PENDING = ("pending", "running")


class ApiError(Exception):
    """An error response of the API: ``status_code`` and its ``detail``."""

    def __init__(self, status_code: int, detail: Any, method: str, url: str) -> None:
        self.status_code = status_code
        self.detail = detail
        super().__init__(f"{method} {url}: HTTP {status_code}: {self._describe()}")

    @property
    def problems(self) -> list[dict[str, Any]]:
        """A 422's problems, each ``{"loc": [...], "msg": ..., "type": ...}``; else empty."""
        return list(self.detail) if isinstance(self.detail, list) else []

    def _describe(self) -> str:
        if not self.problems:
            return str(self.detail)
        return "; ".join(
            ".".join(str(p) for p in e.get("loc", ())) + f": {e.get('msg', '')}"
            for e in self.problems
        )


class AuthenticationError(ApiError):
    """401: the API token is missing or wrong."""


class NotFoundError(ApiError, KeyError):
    """404: no such study (or nothing to show yet, e.g. no finished trial)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ConflictError(ApiError):
    """409: a duplicate name, or a move the study's status does not allow."""


class ValidationError(ApiError, ValueError):
    """422: the request is invalid; :attr:`problems` lists every problem with its path."""


_ERRORS: dict[int, type[ApiError]] = {
    401: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
}


def _raise_for(r: httpx.Response) -> None:
    if r.is_success:
        return
    try:
        detail = r.json().get("detail", r.text)
    except ValueError:
        detail = r.text
    cls = _ERRORS.get(r.status_code, ApiError)
    raise cls(r.status_code, detail, r.request.method, str(r.request.url))


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
        _raise_for(r)
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
        with _ProgressBar(self.name, self.detail.n_trials, enabled=progress) as show:
            while True:
                d = self.refresh()
                show(d.budget.get("finished", 0), _progress_info(d))
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


def _progress_info(d: StudyDetail) -> str:
    c = d.trial_counts
    best = d.best_trial
    value = f"{best.value:.4f}" if best and best.value is not None else "-"
    return (
        f"{d.status} running={c.get('running', 0)} pruned={c.get('pruned', 0)} "
        f"failed={c.get('fail', 0)} best={value}"
    )


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where a terminal progress bar would not redraw)."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


class _ProgressBar:
    """``with _ProgressBar(name, total, enabled) as show: show(done, info)``."""

    def __init__(self, name: str, total: int, *, enabled: bool) -> None:
        self.name, self.total, self.enabled = name, total, enabled
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda done, info: None
        if in_notebook():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=self.name)
            return self._show_tqdm
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
        )
        self._bar.__enter__()
        self._task = self._bar.add_task(self.name, total=self.total, info="")
        return self._show_rich

    def _show_tqdm(self, done: int, info: str) -> None:
        self._bar.n = done
        self._bar.set_postfix_str(info)  # refreshes

    def _show_rich(self, done: int, info: str) -> None:
        self._bar.update(self._task, completed=done, info=info)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            if self._task is None:
                self._bar.close()
            else:
                self._bar.__exit__(None, None, None)
