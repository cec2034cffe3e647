"""Device cookies: only a value this deployment issued for this user names a device."""

from __future__ import annotations

from offsite.api.device_cookie import device_key, issue, trusted_device
from offsite.api.ratelimit import RateLimiter

KEY = device_key("q" * 40)


def test_a_cookie_names_its_device_for_its_own_user_only() -> None:
    value = issue(KEY, "adm")
    device = trusted_device(KEY, value, "adm")
    assert device and value.startswith(device + ".")
    assert trusted_device(KEY, value, "adm2") is None
    assert trusted_device(device_key("r" * 40), value, "adm") is None


def test_altered_or_malformed_cookies_name_no_device() -> None:
    device, mac = issue(KEY, "adm").split(".")
    forged = [
        f"x{device}.{mac}",
        f"{device}.{mac[:-1]}A",
        f"{device}",
        "",
        None,
        f".{mac}",
        "a.b.c",
    ]
    assert [trusted_device(KEY, v, "adm") for v in forged] == [None] * len(forged)


def test_devices_are_distinct() -> None:
    assert len({issue(KEY, "adm").split(".")[0] for _ in range(50)}) == 50


def test_a_refunded_token_is_spent_again_and_never_above_the_burst() -> None:
    limiter = RateLimiter(per_minute=6, burst=2)
    assert limiter.hit("k", 0.0) is None and limiter.hit("k", 0.0) is None
    assert limiter.hit("k", 0.0) is not None
    limiter.refund("k", 0.0)
    assert limiter.hit("k", 0.0) is None and limiter.hit("k", 0.0) is not None
    for _ in range(5):
        limiter.refund("k", 0.0)
    assert [limiter.hit("k", 0.0) is None for _ in range(3)] == [True, True, False]
