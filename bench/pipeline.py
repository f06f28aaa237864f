"""What the request pipeline's checks before the view cost (``citycredit.web.pipeline``), per request.

Times the request id, the control-character scan and the JSON depth check (best of 5 rounds) on a
verification's body and on a 10,000-row records upload, against one ``json.loads`` of that upload
(which flask-smorest's argument parser does again after the checks).

    .venv/bin/python bench/pipeline.py
"""

from __future__ import annotations

import json
import os
import tempfile
import time

from flask import request

from citycredit.web import pipeline
from citycredit.web.app import create_app

ROUNDS = 5


def main() -> None:
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


if __name__ == "__main__":
    main()
