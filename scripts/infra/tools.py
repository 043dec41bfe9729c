"""What `make test` needs besides Kafka and Redis, installed the way `up` installs
redis-server: chromium (the browser tests drive Debian's chromium; Playwright never downloads
one), promtool from Debian's prometheus (the alert rules' tests) and node with npm (the
AsyncAPI document is checked with the official parser, scripts/asyncapi_check/)."""

from __future__ import annotations

from infra.apt import Need, apt_install
from infra.console import say

TEST_TOOLS = (
    Need("chromium", "chromium", "the browser tests drive it"),
    Need("promtool", "prometheus", "tests/unit/deploy checks the alert rules with it"),
    Need("node", "nodejs", "runs the AsyncAPI check"),
    Need("npm", "npm", "installs the AsyncAPI parser"),
)


def ensure_test_tools() -> None:
    """Install every missing test tool, or fail naming the command that would."""
    found = apt_install(*TEST_TOOLS)
    say("tools  " + ", ".join(found) + " present")
