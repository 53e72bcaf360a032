"""Jules detection against fake ``jules`` executables, including the offline npm wrapper."""

from __future__ import annotations

import aim_jules
from aim_core.context import AimContext
from aim_core.testing import make_fake_tool

OFFLINE = (
    "❌ A critical error occurred during the process. Error: getaddrinfo ENOTFOUND "
    "storage.googleapis.com\nFailed to start jules binary: Error: spawn /tmp/jules_tmp/jules ENOENT"
)


def ctx(tmp_path, **env):
    return AimContext(
        root=tmp_path, environ={"PATH": str(tmp_path / "bin"), "HOME": str(tmp_path), **env}
    )


def test_not_logged_in_gives_the_guides_warning(tmp_path):
    make_fake_tool(tmp_path / "bin", "jules", version_output="jules v0.1.42")
    found = aim_jules.detect_tool(ctx(tmp_path))
    assert found.installed and found.version == "jules v0.1.42"
    assert found.ready is False and found.failure == "auth_required"
    assert found.reason == "Jules requires login (run 'jules login')"


def test_logged_in_by_credentials_file_or_api_key(tmp_path):
    make_fake_tool(tmp_path / "bin", "jules")
    creds = tmp_path / ".jules" / "cache" / "oauth_creds.json"
    creds.parent.mkdir(parents=True)
    creds.write_text("{}")
    found = aim_jules.detect_tool(ctx(tmp_path))
    assert found.ready is True and str(creds) in found.watch_paths
    creds.unlink()
    assert aim_jules.detect_tool(ctx(tmp_path, JULES_API_KEY="k")).ready is True


def test_offline_npm_wrapper_is_unavailable_not_logged_out(tmp_path):
    make_fake_tool(
        tmp_path / "bin", "jules", version_exit=1, version_output="", version_stderr=OFFLINE
    )
    found = aim_jules.detect_tool(ctx(tmp_path))
    assert found.installed and found.ready is False and found.failure == "unavailable"
    assert "'Failed to start jules binary'" in found.reason
    assert "storage.googleapis.com" in found.reason
