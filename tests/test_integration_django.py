"""The Django app and middleware: real requests through Django's test clients, sync and async."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.framework_apps import events_named, run_script, sent_twice

pytest.importorskip("django", reason="the Django integration needs Django (in the test extra)")

PROJECT = """
    import os
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="not-a-secret-test-key",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF="project",
        INSTALLED_APPS=[
            "django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions",
            "tracker.integrations.django",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "tracker.integrations.django.TrackingMiddleware",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}},
        TRACKING={"TOKEN": "django-token", "API_HOST": os.environ["COLLECTOR"],
                  "CONTEXT": "project.request_context"},
        USE_TZ=True,
    )
    django.setup()

    from django.http import JsonResponse
    from django.urls import path
    from tracker.integrations.django import tracker

    def request_context(request):
        return {"path": request.path, "method": request.method}

    def signup(request):
        tracker().track(None, "Signed Up", {"plan": request.GET["plan"]})
        return JsonResponse({"ok": True})

    async def viewed(request):
        tracker().track(None, "Viewed")
        return JsonResponse({"ok": True})

    def anonymous(request):
        tracker().track("anon-1", "Browsed")
        return JsonResponse({"ok": True})

    urlpatterns = [path("signup", signup), path("viewed", viewed), path("anon", anonymous)]
"""


def test_views_track_with_the_user_and_the_request_context(collector, tmp_path: Path):
    (tmp_path / "project.py").write_text(__import__("textwrap").dedent(PROJECT))
    result = run_script(tmp_path, "drive.py", """
        import asyncio
        import project
        from django.contrib.auth.models import User
        from django.core.management import call_command
        from django.test import AsyncClient, Client

        call_command("migrate", verbosity=0, interactive=False)
        ada = User.objects.create_user("ada", password="pw")
        client = Client()
        client.force_login(ada)
        for i in range(20):
            assert client.post(f"/signup?plan=p{i}").status_code == 200
        assert Client().get("/anon").status_code == 200

        async def async_requests():
            aclient = AsyncClient()
            await aclient.aforce_login(ada) if hasattr(aclient, "aforce_login") else None
            for _ in range(5):
                assert (await aclient.get("/viewed")).status_code == 200
        if hasattr(AsyncClient, "aforce_login"):
            asyncio.run(async_requests())
        print("user", ada.pk)
    """, COLLECTOR=collector.url)
    assert result.returncode == 0, result.stdout + result.stderr
    user = result.stdout.split("user ", 1)[1].strip()
    signups = events_named(collector, "Signed Up")
    assert len(signups) == 20 and sent_twice(collector) == 0
    assert {e["properties"]["distinct_id"] for e in signups} == {user}
    assert {e["properties"]["plan"] for e in signups} == {f"p{i}" for i in range(20)}
    assert all(e["properties"]["path"] == "/signup" for e in signups)
    assert all(e["properties"]["method"] == "POST" for e in signups)
    [browsed] = events_named(collector, "Browsed")
    assert browsed["properties"]["distinct_id"] == "anon-1"  # no user: the call's own id
    assert browsed["properties"]["path"] == "/anon"
    import django

    if django.VERSION >= (5, 0):  # the async test client logs in from Django 5
        viewed = events_named(collector, "Viewed")
        assert len(viewed) == 5
        assert {e["properties"]["distinct_id"] for e in viewed} == {user}


def test_a_misconfiguration_fails_at_start_with_the_setting_named(tmp_path: Path):
    source = __import__("textwrap").dedent(PROJECT).replace(
        'TRACKING={"TOKEN": "django-token",', 'TRACKING={"TOKN": "django-token",'
    )
    (tmp_path / "project.py").write_text(source)
    result = run_script(tmp_path, "start.py", "import project\n", COLLECTOR="http://127.0.0.1:9")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "unknown keys: ['TOKN']" in result.stderr
    assert "django-token" not in result.stderr  # the token is not echoed
