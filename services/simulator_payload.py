"""The simulator's bodies: its check of a submit (Segmind's 400 texts for cog-video-5b-t2v)
and the result of a finished job, in each of the output shapes Segmind uses."""

from __future__ import annotations

from typing import Any

from services.models import (
    FRAME_RATE,
    GUIDANCE_SCALE,
    INPUT_FRAMES,
    NEGATIVE_PROMPT_MAX,
    PROMPT_MAX,
    SEED,
    STEPS,
    SegmindState,
)

_INTEGER_PARAMS: dict[str, tuple[int, int]] = {
    "input_frames": INPUT_FRAMES,
    "steps": STEPS,
    "seed": SEED,
    "frame_rate": FRAME_RATE,
}


def validate_payload(payload: Any) -> str | None:
    """Segmind's 400 text for an invalid cog-video-5b-t2v body, or None when it is valid."""
    if not isinstance(payload, dict):
        return "Request body must be a JSON object"
    prompt = payload.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return "Missing required parameter: prompt"
    if len(prompt) > PROMPT_MAX:
        return f"Invalid parameter 'prompt': must be at most {PROMPT_MAX} characters"
    negative = payload.get("negative_prompt", "")
    if not isinstance(negative, str) or len(negative) > NEGATIVE_PROMPT_MAX:
        return (
            "Invalid parameter 'negative_prompt': "
            f"must be text of at most {NEGATIVE_PROMPT_MAX} characters"
        )
    for name, (low, high) in _INTEGER_PARAMS.items():
        value = payload.get(name, low)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"Invalid parameter '{name}': must be an integer between {low} and {high}"
    scale = payload.get("guidance_scale", GUIDANCE_SCALE[0])
    lowest, highest = GUIDANCE_SCALE
    if (
        isinstance(scale, bool)
        or not isinstance(scale, (int, float))
        or not lowest <= scale <= highest
    ):
        return (
            "Invalid parameter 'guidance_scale': "
            f"must be a number between {lowest:g} and {highest:g}"
        )
    return None


def shaped_output(video_url: str, shape: str) -> Any:
    """The result's ``output`` as Segmind gives it: a URL, a list of one, or an object."""
    if shape == "list":
        return [video_url]
    if shape == "object":
        return {"video": video_url, "content_type": "video/mp4"}
    return video_url


def completed_result(
    request_id: str,
    video_url: str,
    *,
    shape: str,
    queue_seconds: float,
    processing_seconds: float,
    cost: Any,
) -> dict[str, Any]:
    """A COMPLETED job's result body; ``cost`` is ``metrics.cost`` as given (any JSON value,
    so tests can play a missing or absurd figure)."""
    return {
        "request_id": request_id,
        "status": SegmindState.COMPLETED.value,
        "error": None,
        "output": shaped_output(video_url, shape),
        "metrics": {
            "queue_time": queue_seconds,
            "inference_time": processing_seconds,
            "cost": cost,
        },
    }
