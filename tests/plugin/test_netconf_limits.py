"""A NAD's spec.config goes through the one depth guard and the integer length limit (issue 12)."""

from __future__ import annotations

import pytest

from plugin.model import netconf

HINT = 'a CNI config is a JSON object, e.g. {"cniVersion": "0.3.1", "type": "bridge"}'


@pytest.mark.parametrize("depth", [33, 600, 100_000])
def test_a_config_nested_past_the_limit_is_refused_even_behind_a_repeated_key(depth: int) -> None:
    # the decoder keeps the last "x" ({}), so the decoded config looks shallow
    config = '{"cniVersion":"0.3.1","type":"bridge","args":{"x":' + "[" * depth + "]" * depth + ',"x":{}}}'
    (problem,) = netconf.parse_netconf(config, "n").errors
    assert problem.path == "spec.config"
    assert problem.message.startswith(
        "the CNI config is nested more than 32 levels deep; at most 32 levels of objects and lists are accepted (got "
    )
    assert problem.message.endswith(HINT)


def test_a_config_at_the_limit_is_read() -> None:
    config = '{"cniVersion":"0.3.1","type":"bridge","args":{"x":' + "[" * 30 + "]" * 30 + "}}"
    assert netconf.parse_netconf(config, "n").errors == ()


def test_an_integer_past_the_digit_limit_is_invalid_json_with_a_message_for_users() -> None:
    (problem,) = netconf.parse_netconf('{"cniVersion":"0.3.1","type":"bridge","mtu":' + "9" * 5000 + "}", "n").errors
    assert problem.message.startswith(
        "the CNI config is not valid JSON: a number has 5000 digits (999999999999...); at most 100 digits are "
        "accepted (got "
    )
