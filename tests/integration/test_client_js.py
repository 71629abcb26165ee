"""``/auth/client.js`` and its ES-module form are served as the browser needs them (§8)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.procs import Gateway


@pytest.mark.parametrize("path", ["/auth/client.js", "/auth/client.mjs"])
def test_client_is_served_as_javascript_and_revalidated(gateway: Gateway, path: str) -> None:
    response = httpx.get(f"{gateway.url}{path}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert "createGatewayClient" in response.text
    head = httpx.head(f"{gateway.url}{path}")
    assert head.status_code == 200


def test_the_module_form_reexports_the_classic_script(gateway: Gateway) -> None:
    module = httpx.get(f"{gateway.url}/auth/client.mjs").text
    assert 'import "./client.js";' in module
    assert "export const createGatewayClient" in module
    classic = httpx.get(f"{gateway.url}/auth/client.js").text
    # A classic <script> must not contain module syntax, or it would not parse.
    assert not any(line.startswith(("import ", "export ")) for line in classic.splitlines())
    # The token never goes to storage or into a URL.
    for forbidden in ("localStorage", "sessionStorage", "document.cookie", "access_token"):
        assert forbidden not in classic.split("*/", 1)[1], forbidden
