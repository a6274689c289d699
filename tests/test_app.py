"""payapp.PayApp: Flask with ensure_sync's answer remembered per function (issue 10)."""


def test_plain_functions_run_as_they_are_and_async_ones_are_still_wrapped(app, monkeypatch):
    def plain():
        return "plain"

    async def later():
        return "later"

    wrapped = []
    monkeypatch.setattr(app, "async_to_sync", lambda func: wrapped.append(func) or "wrapped")
    for _ in range(2):  # the second time from what was remembered
        assert app.ensure_sync(plain) is plain
        assert app.ensure_sync(later) == "wrapped"
    assert wrapped == [later, later]


def test_every_hook_still_runs(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}
    assert "'nonce-" in response.headers["Content-Security-Policy"]  # Talisman's hooks ran
    assert response.headers["Cache-Control"] == "no-store"  # add_security_headers ran
