"""The simulator's result body, built apart from its server so the server stays small."""

from __future__ import annotations

import pytest

from services.simulator_payload import completed_result

URL = "http://127.0.0.1:1/files/r1.mp4"


@pytest.mark.parametrize(
    ("shape", "output"),
    [
        ("string", URL),
        ("list", [URL]),
        ("object", {"video": URL, "content_type": "video/mp4"}),
    ],
)
def test_a_finished_jobs_result_carries_its_output_in_segminds_shapes_and_its_metrics(
    shape: str, output: object
) -> None:
    body = completed_result(
        "r1", URL, shape=shape, queue_seconds=1.0, processing_seconds=5.0, cost=0.42
    )

    assert body == {
        "request_id": "r1",
        "status": "COMPLETED",
        "error": None,
        "output": output,
        "metrics": {"queue_time": 1.0, "inference_time": 5.0, "cost": 0.42},
    }
