"""The retry schedule: doubling from 10 s to a 4-hour cap, jittered over the upper half, so a
receiver down for three days is tried a few dozen times, never in lockstep with its neighbours."""

from __future__ import annotations

import datetime as dt
import random

from push.delivery import FIRST_RETRY, GIVE_UP_AFTER, MAX_BACKOFF, backoff


def test_backoff_doubles_to_its_cap_with_jitter() -> None:
    rng = random.Random(7)
    for tries in range(1, 40):
        ceiling = min(MAX_BACKOFF, FIRST_RETRY * 2 ** (tries - 1))
        waits = {backoff(tries, rng) for _ in range(20)}
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
        assert len(waits) > 1  # jittered: two deliveries failing together retry apart
    assert backoff(1, rng) <= dt.timedelta(seconds=10)
    assert backoff(30, rng) >= dt.timedelta(hours=2)


def test_three_days_of_retries_are_a_few_dozen_tries() -> None:
    rng = random.Random(11)
    elapsed, tries = dt.timedelta(0), 0
    while elapsed < GIVE_UP_AFTER:
        tries += 1
        elapsed += backoff(tries, rng)
    assert 20 <= tries <= 45
