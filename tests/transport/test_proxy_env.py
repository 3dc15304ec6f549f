"""The proxy variables are read as urllib reads them, looking up only their names."""

from __future__ import annotations

import urllib.request

import pytest

from tether.transport._proxy import _environment_proxies


@pytest.mark.parametrize(
    "variables",
    [
        {},
        {"HTTPS_PROXY": "http://a:1"},
        {"https_proxy": "http://b:2", "HTTPS_PROXY": "http://a:1"},
        {"https_proxy": "", "HTTPS_PROXY": "http://a:1"},  # an empty lower-case name wins
        {"HTTP_PROXY": "http://a:1", "ALL_PROXY": "http://c:3", "NO_PROXY": "localhost"},
        {"HTTP_PROXY": "http://a:1", "REQUEST_METHOD": "GET"},  # httpoxy: not in CGI
        {"no_proxy": "*", "all_proxy": "http://c:3"},
    ],
)
def test_the_proxy_variables_read_as_urllib_reads_them(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]
) -> None:
    for name in ("http", "https", "all", "no"):
        monkeypatch.delenv(f"{name}_proxy", raising=False)
        monkeypatch.delenv(f"{name.upper()}_PROXY", raising=False)
    monkeypatch.delenv("REQUEST_METHOD", raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert _environment_proxies() == urllib.request.getproxies_environment()
