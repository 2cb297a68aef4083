"""The gateway's values (deploy/gateway.py): defaults, overrides, and refusing what nginx would refuse.

A value that passes here is pasted into nginx's config, so a refusal must come here, naming the
setting, rather than from ``nginx -t`` pointing at a line of a generated file.
"""

from __future__ import annotations

import pytest

from deploy.gateway import GATEWAY_SETTINGS, gateway_values

PROXY = "LIVEFEED_GATEWAY_TRUSTED_PROXY"
STREAMS = "LIVEFEED_GATEWAY_STREAMS_PER_ADDRESS"
COUNTS = [s.name for s in GATEWAY_SETTINGS if s.name != PROXY]


def assert_refused(name: str, value: str) -> None:
    with pytest.raises(ValueError) as caught:
        gateway_values({name: value})
    assert name in str(caught.value)
    assert repr(value) in str(caught.value)


# Defaults and overrides


def test_with_nothing_set_every_setting_has_its_documented_default() -> None:
    values = gateway_values({})
    assert list(values) == [s.name for s in GATEWAY_SETTINGS]
    assert values[PROXY] == "unix:"
    assert values[STREAMS] == "2000"
    assert values["LIVEFEED_GATEWAY_CLIENT_TIMEOUT_S"] == "10"


def test_every_default_is_a_value_the_gateway_accepts() -> None:
    """A default that its own check refused would stop every stack from starting."""
    defaults = {s.name: s.default for s in GATEWAY_SETTINGS}
    assert gateway_values(defaults) == defaults


def test_a_set_value_replaces_the_default_and_only_its_own() -> None:
    values = gateway_values({"LIVEFEED_GATEWAY_READ_BURST": "5000"})
    assert values["LIVEFEED_GATEWAY_READ_BURST"] == "5000"
    assert values["LIVEFEED_GATEWAY_WRITE_BURST"] == "400"


def test_other_environment_variables_are_ignored() -> None:
    values = gateway_values({"PATH": "/usr/bin", "LIVEFEED_GATEWAY_UNKNOWN": "x", "LIVEFEED_WRITE_BURST": "-1"})
    assert values == gateway_values({})


@pytest.mark.parametrize("name", [s.name for s in GATEWAY_SETTINGS])
def test_an_empty_value_means_the_default(name: str) -> None:
    assert gateway_values({name: ""})[name] == gateway_values({})[name]


# Counts


@pytest.mark.parametrize("value", ["1", "7", "65535"])
@pytest.mark.parametrize("name", COUNTS)
def test_positive_whole_numbers_are_accepted(name: str, value: str) -> None:
    assert gateway_values({name: value})[name] == value


def test_rates_bursts_and_timeouts_take_up_to_nine_digits() -> None:
    assert gateway_values({"LIVEFEED_GATEWAY_READ_BURST": "999999999"})["LIVEFEED_GATEWAY_READ_BURST"] == "999999999"
    assert_refused("LIVEFEED_GATEWAY_READ_BURST", "1000000000")


@pytest.mark.parametrize("value", ["0", "007", "-5", "1.5", "1e3", " 5", "5 ", "5\n", "ten", "5;", "5 nodelay"])
@pytest.mark.parametrize("name", ["LIVEFEED_GATEWAY_WRITE_RATE_PER_S", "LIVEFEED_GATEWAY_CLIENT_TIMEOUT_S"])
def test_anything_but_a_positive_whole_number_is_refused_naming_the_setting(name: str, value: str) -> None:
    assert_refused(name, value)


def test_more_streams_per_address_than_nginx_can_count_is_refused() -> None:
    """nginx -t: "connection limit must be less 65536" (limit_conn)."""
    assert_refused(STREAMS, "65536")


# The trusted proxy


@pytest.mark.parametrize("value", ["unix:", "10.0.0.1", "10.0.0.0/8", "192.168.1.0/24", "::1", "fd00::/8",
                                   "2001:db8::/32"])
def test_an_address_a_cidr_or_unix_is_accepted_as_the_trusted_proxy(value: str) -> None:
    assert gateway_values({PROXY: value})[PROXY] == value


@pytest.mark.parametrize("value", ["proxy.example", "10.0.0.1; allow all", "10.0.0.1\ninclude /etc/passwd",
                                   "10.0.0.1 10.0.0.2", "10.0.0.0/", "unix:/run/x", "*"])
def test_anything_else_is_refused_as_the_trusted_proxy(value: str) -> None:
    assert_refused(PROXY, value)


@pytest.mark.parametrize("value", ["10.0.0.0/33", "::1/129", "999.1.1.1"])
def test_an_address_nginx_cannot_read_is_refused_as_the_trusted_proxy(value: str) -> None:
    """nginx -t: 'host not found in set_real_ip_from' for each of these."""
    assert_refused(PROXY, value)
