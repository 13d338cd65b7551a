"""The fuzzing harness' own check (tests/fuzz/harness.py): what counts as the error envelope."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.fuzz.harness import error_envelope

ERROR = {"code": "NOT_FOUND", "message": "no such thing", "details": [], "request_id": "r1"}


@dataclass
class Answer:
    status_code: int
    body: Any
    headers: dict[str, list[str]] = field(default_factory=lambda: {"x-request-id": ["r1"]})

    def json(self) -> Any:
        return self.body


def test_a_4xx_in_the_envelope_with_its_request_id_passes() -> None:
    detailed = {**ERROR, "details": [{"field": "name", "message": "too short"}]}
    assert error_envelope(None, Answer(404, {"error": ERROR}), None) is None
    assert error_envelope(None, Answer(400, {"error": detailed}), None) is None
    assert error_envelope(None, Answer(200, {"anything": 1}), None) is None  # 4xx only


@pytest.mark.parametrize(
    "answer",
    [
        Answer(404, {"message": "no such thing"}),
        Answer(404, {"error": ERROR, "extra": 1}),
        Answer(404, {"error": {**ERROR, "hint": "x"}}),
        Answer(400, {"error": {**ERROR, "details": [{"field": "name"}]}}),
        Answer(409, {"error": {**ERROR, "code": ""}}),
        Answer(429, {"error": ERROR}, {"x-request-id": ["r2"]}),
        Answer(403, {"error": {**ERROR, "request_id": ""}}, {}),
        Answer(405, "<html>Method Not Allowed</html>"),
    ],
)
def test_anything_else_fails(answer: Answer) -> None:
    with pytest.raises(AssertionError):
        error_envelope(None, answer, None)
