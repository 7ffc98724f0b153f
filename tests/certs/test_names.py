"""certs.names: the Service's DNS names and the extra SANs, with the DNS-1123 wording."""

from __future__ import annotations

import ipaddress

import pytest

from certs import CertsError
from certs.names import check_host, service_dns_names, subject_hosts


def test_a_service_gets_its_four_dns_names_shortest_first() -> None:
    assert service_dns_names("netplex-webhook", "netplex-system") == [
        "netplex-webhook",
        "netplex-webhook.netplex-system",
        "netplex-webhook.netplex-system.svc",
        "netplex-webhook.netplex-system.svc.cluster.local",
    ]


def test_another_cluster_domain_is_used_for_the_longest_name() -> None:
    assert service_dns_names("wh", "ns", "corp.example")[-1] == "wh.ns.svc.corp.example"


@pytest.mark.parametrize(
    ("service", "namespace", "message"),
    [
        ("Netplex", "netplex-system",
         '"Netplex" is not a valid Service name (a DNS-1123 label: it contains uppercase \'N\'); use lowercase '
         "letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"),
        ("netplex-webhook", "netplex.system",
         '"netplex.system" is not a valid namespace (a DNS-1123 label: it contains \'.\'); use lowercase '
         "letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"),
    ],
)
def test_a_service_or_namespace_that_is_not_a_label_is_refused_with_the_rule(
    service: str, namespace: str, message: str
) -> None:
    with pytest.raises(CertsError) as caught:
        service_dns_names(service, namespace)

    assert str(caught.value) == message


def test_ips_become_addresses_names_are_lowercased_and_duplicates_and_listen_addresses_go() -> None:
    hosts, problems = subject_hosts(["10.96.0.10", "Webhook.Example.COM", "webhook.example.com", "0.0.0.0",
                                     "::", " ", "fd00::a", "*.netplex-system.svc"])

    assert problems == []
    assert hosts == [ipaddress.ip_address("10.96.0.10"), "webhook.example.com", ipaddress.ip_address("fd00::a"),
                     "*.netplex-system.svc"]


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("my_host", '"my_host" is not a valid DNS name (a DNS-1123 subdomain: it has a part "my_host" that contains \'_\'); '
                    "use lowercase letters, digits, '-' and '.', each dot-separated part starting and ending "
                    "with a letter or digit, at most 253 characters"),
        ("a..b", '"a..b" is not a valid DNS name (a DNS-1123 subdomain: it has an empty part between dots); '
                 "use lowercase letters, digits, '-' and '.', each dot-separated part starting and ending with a "
                 "letter or digit, at most 253 characters"),
        ("[::1]", '"[::1]" is not an IP address nor a DNS name; write an address without brackets or a port'),
        ("10.0.0.1:443", '"10.0.0.1:443" is not an IP address nor a DNS name; write an address without brackets '
                         "or a port"),
    ],
)
def test_a_host_that_cannot_be_a_san_says_why(host: str, message: str) -> None:
    assert check_host(host) == message
    assert subject_hosts(["ok.example", host]) == (["ok.example"], [message])
