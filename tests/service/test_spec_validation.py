"""One validation path for a study spec: the request body is parsed once into a StudySpec that
keeps its parsed search space; FastAPI's schema shows the search space; every problem of a bad
spec comes back once, with its path."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from support import tiny_spec

import tuner_service.spec as spec_module
from search_spaces import VOCABULARY, parse_space
from tuner_service.errors import SpecError
from tuner_service.spec import StudySpec, parse_study_spec

SPACE = {
    "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
    "momentum": {"type": "float", "low": 0.0, "high": 0.9, "when": {"optimizer": ["sgd"]}},
    "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
}


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every search space the spec module parses."""
    seen: list[Any] = []

    def counting(raw: Any) -> Any:
        seen.append(raw)
        return parse_space(raw)

    monkeypatch.setattr(spec_module, "parse_space", counting)
    return seen


def test_the_spec_keeps_its_parsed_space(parses: list[Any]) -> None:
    spec = StudySpec.model_validate(tiny_spec("kept", search_space=SPACE))
    assert len(parses) == 1
    assert spec.space() == parse_space(SPACE)
    assert spec.space() is spec.space()
    assert len(parses) == 1
    # The spec stores the space as given (not its canonical form), and reads back equal.
    dumped = spec.model_dump(mode="json")
    assert dumped["search_space"] == SPACE
    assert StudySpec.model_validate(dumped).space() == spec.space()
    # An existing spec is not validated again.
    assert parse_study_spec(spec) is spec
    assert len(parses) == 2


def test_post_studies_parses_the_space_once(client: TestClient, parses: list[Any]) -> None:
    r = client.post("/studies", json=tiny_spec("once", search_space=SPACE))
    assert r.status_code == 201, r.text
    assert parses == [SPACE]


def test_openapi_shows_the_whole_search_space(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    body = doc["paths"]["/studies"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/StudySpec"}
    space = doc["components"]["schemas"]["StudySpec"]["properties"]["search_space"]
    assert space["type"] == "object" and space["additionalProperties"] is False
    assert set(space["properties"]) == set(VOCABULARY)
    shapes = space["properties"]["learning_rate"]["oneOf"]
    assert {s["properties"]["type"]["const"] for s in shapes} == {"float", "categorical", "fixed"}


def test_every_problem_once_with_its_path(client: TestClient) -> None:
    bad = tiny_spec("bad", budget={"n_trials": 0}, search_space={
        "momentum": {"type": "float", "low": 0.5, "high": 0.1},
        "optimiser": {"type": "fixed", "value": "sgd"},
    })
    r = client.post("/studies", json=bad)
    assert r.status_code == 422
    detail = r.json()["detail"]
    locs = [tuple(e["loc"]) for e in detail]
    assert locs == [
        ("body", "budget", "n_trials"),
        ("body", "search_space", "momentum", "low"),
        ("body", "search_space", "optimiser"),
    ]
    by_loc = {tuple(e["loc"]): e for e in detail}
    unknown = by_loc[("body", "search_space", "optimiser")]
    assert unknown["type"] == "unknown_name" and "did you mean 'optimizer'" in unknown["msg"]
    assert unknown["input"] == {"type": "fixed", "value": "sgd"}
    low = by_loc[("body", "search_space", "momentum", "low")]
    assert low["type"] == "low_not_below_high" and low["input"] == 0.5
    # parse_study_spec reports the very same problems.
    with pytest.raises(SpecError) as err:
        parse_study_spec(bad)
    assert [p.path for p in err.value.problems] == [loc[1:] for loc in locs]


def test_a_search_space_that_is_not_an_object_is_one_problem(client: TestClient) -> None:
    r = client.post("/studies", json=tiny_spec("list", search_space=[1, 2]))
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "search_space"]]


def test_space_problems_alone_and_the_after_checks(client: TestClient) -> None:
    """Space problems without any other come back alone; with a valid space, the checks on the
    whole spec (one objective per metric) still run."""
    r = client.post("/studies", json=tiny_spec("alone", search_space={"dropout": {"type": "x"}}))
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "search_space", "dropout", "type"]]
    twice = [{"metric": "val_loss"}, {"metric": "val_loss"}]
    r = client.post("/studies", json=tiny_spec("twice", objective=twice))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body"]
    assert "each metric may appear once" in r.json()["detail"][0]["msg"]
