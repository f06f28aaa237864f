"""A webhook URL must reach a public address (the city's worker must not post into its own network)."""

from __future__ import annotations

import pytest

from push.subscriptions import SubscriptionError, check_url


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://[::1]/hook",
        "https://169.254.169.254/latest/meta-data",  # a cloud's instance metadata
        "https://192.168.0.10:8443/hook",
        "https://localhost/hook",
    ],
)
def test_a_subscription_must_reach_a_public_address(url: str) -> None:
    with pytest.raises(SubscriptionError, match="public address"):
        check_url(url, allow_http=False)


def test_a_public_address_and_a_loopback_receiver_allowed_for_development_pass() -> None:
    assert check_url("https://8.8.8.8/hook", allow_http=False) == "https://8.8.8.8/hook"
    assert check_url("http://127.0.0.1:9000/h", allow_http=True) == "http://127.0.0.1:9000/h"


@pytest.mark.parametrize(
    "url", ["https://xn--/", "https://a..b/", "https://a:99999/", "https://[::1/"]
)
def test_a_url_no_request_could_be_sent_to_is_refused_not_a_crash(url: str) -> None:
    """Such a URL once stopped every round of the worker (httpx raised outside its error tree)."""
    with pytest.raises(SubscriptionError, match="cannot be read as an address"):
        check_url(url, allow_http=False)
