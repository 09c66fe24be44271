"""/health says what it checked, and is "ok" (200) only when every check holds (issue 17)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from fixtures_bridge import bridges_fixture  # noqa: F401 (the `bridges` fixture)
from fixtures_orthanc import free_port


def _get(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_health_checks_listener_worker_and_destination(bridges):
    svc, _ = bridges(destination={"kind": "dimse", "ae_title": "NOBODY", "port": free_port()})
    code, health = _get(svc.http.port)
    assert code == 503 and health["status"] == "degraded"
    checks = health["checks"]
    assert checks["listener"]["ok"] and checks["worker"]["ok"]
    assert checks["worker"]["mode"] == "in-process"
    # nothing was sent yet, so the destination was probed (C-ECHO): nobody listens there
    assert not checks["destination"]["ok"] and "C-ECHO" in checks["destination"]["detail"]
    assert health["problems"] == ["destination " + checks["destination"]["detail"]]
    assert health["problems"][0].startswith("destination unreachable: ")
    assert checks["studies"] == {"ok": True, "failed": 0, "quarantined": 0,
                                 "waiting_to_send": 0}
    assert health["last_analysis_at"] is None and health["last_send_at"] is None

    svc.scp.stop()  # the listener goes away: said so
    code, health = _get(svc.http.port)
    assert code == 503 and "listener down: not accepting associations" in health["problems"]


def test_health_is_ok_when_every_check_holds(bridges):
    svc, _ = bridges()  # no destination configured: nothing to reach
    code, health = _get(svc.http.port)
    assert code == 200 and health["status"] == "ok" and health["problems"] == []
    assert all(check["ok"] for check in health["checks"].values())
    assert health["checks"]["destination"]["detail"] == "no [destination] configured"
