"""What `make test` needs besides Kafka and Redis, installed the way `up` installs
redis-server: chromium (the browser tests drive Debian's chromium; Playwright never downloads
one), promtool from Debian's prometheus (the alert rules' tests) and node with npm (the
AsyncAPI document is checked with the official parser, scripts/asyncapi_check/)."""

from __future__ import annotations

from infra.apt import apt_install
from infra.console import say

#: command -> (Debian package, what needs it)
TEST_TOOLS: dict[str, tuple[str, str]] = {
    "chromium": ("chromium", "the browser tests drive it"),
    "promtool": ("prometheus", "tests/deploy checks the alert rules with it"),
    "node": ("nodejs", "the AsyncAPI check runs on it"),
    "npm": ("npm", "installs the AsyncAPI parser"),
}


def ensure_test_tools() -> None:
    """Install every missing test tool, or fail naming the command that would."""
    for command, (package, why) in TEST_TOOLS.items():
        path = apt_install(command, package, why=why)
        say(f"tools  {command:<9} {path}")
