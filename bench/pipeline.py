"""What the request pipeline's checks before the view cost (``citycredit.web.pipeline``), per request.

Times the request id, the control-character scan and the JSON depth check (best of 5 rounds) on a
verification's body and on a 10,000-row records upload, against one ``json.loads`` of that upload
(which flask-smorest's argument parser does again after the checks). It ends with

    RATIO pipeline_upload_checks_over_json_parse <value> target <= 3 <met|MISSED>

No target was stated when the checks came; issue 9 recorded 56 ms for the upload, "about 3x one
json.loads". Issue 14 made that figure the ceiling, so the bench says when the checks grow past it.

    .venv/bin/python bench/pipeline.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

from flask import request
from ratios import Ratio, exit_code, print_ratios  # bench/ratios.py

from citycredit.web import pipeline
from citycredit.web.app import create_app

ROUNDS = 5
UPLOAD_CHECKS_OVER_PARSE_TARGET = 3.0


def main() -> int:
    os.environ.setdefault("CITYCREDIT_ENV", "development")  # throwaway keys for a throwaway app
    tmp = tempfile.mkdtemp()
    app = create_app(
        {"database_url": f"sqlite:///{tmp}/bench.db", "id_hash_key": b"k" * 32, "instance_dir": tmp}
    )
    verification = json.dumps({"token": "eyJ" + "a" * 300, "scenario": "library-forty-books"})
    rows = [
        {
            "source": "court",
            "source_record_id": f"r{i}",
            "id_number": "420202199001011234",
            "item_code": "FINE",
            "document_no": f"罚{i}",
            "occurred_on": "2026-05-01",
            "reported_on": "2026-05-02",
        }
        for i in range(10_000)
    ]
    upload = json.dumps({"records": rows})

    def checks(path: str, body: str, repeat: int) -> float:
        best = float("inf")
        for _ in range(ROUNDS):
            with app.test_request_context(
                path, method="POST", data=body, content_type="application/json"
            ):
                request.get_data(cache=True)
                started = time.perf_counter()
                for _ in range(repeat):
                    pipeline._start()
                    pipeline._refuse_bad_input()
                best = min(best, (time.perf_counter() - started) / repeat)
        return best

    small = checks("/api/v1/verifications", verification, 2000)
    large = checks("/api/v1/records", upload, 3)
    parse = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        json.loads(upload)
        parse = min(parse, time.perf_counter() - started)
    print(f"verification body ({len(verification)} B): {small * 1e6:.0f} µs per request")
    print(
        f"10,000-row records upload ({len(upload) / 1e6:.1f} MB): {large * 1e3:.0f} ms per request; "
        f"one json.loads of it: {parse * 1e3:.0f} ms (ratio {large / parse:.2f})"
    )
    app.extensions["citycredit"].engine.dispose()
    ratios = [
        Ratio(
            "pipeline_upload_checks_over_json_parse",
            large / parse,
            "<=",
            UPLOAD_CHECKS_OVER_PARSE_TARGET,
        )
    ]
    print_ratios(ratios)
    return exit_code(ratios)


if __name__ == "__main__":
    sys.exit(main())
