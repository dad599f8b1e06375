"""LOG_FORMAT=json: one JSON object per line, for log collectors (Loki, Elasticsearch, jq).

A record becomes ``{"time", "level", "logger", "message"}``, the ids of
services/logcontext.py where known, and ``exception`` with its traceback. The secrets filter
(services/logsafety.py) runs on the handler before this formatter, so the message and the
traceback written here are the redacted ones.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from services.logcontext import FIELDS


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            # UTC with milliseconds, so lines from several hosts sort together.
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info and record.exc_info[1] is not None:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text  # already rendered (and redacted) by logsafety
        if record.stack_info:
            line["stack"] = record.stack_info
        # default=str: a library's odd argument type must not cost the line.
        return json.dumps(line, ensure_ascii=False, default=str)
