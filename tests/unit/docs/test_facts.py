"""The user-facing docs state what the code does, so they cannot go stale silently.

- docs/redis-keys.md lists every key `RedisKeys` can build, and no other, with the lifetimes
  the code gives them;
- the numbers a player or an operator relies on (winning score, tiebreak limit, lobby and
  spectator caps, password attempts, finished-room lifetime, ...) are the code's values in
  docs/bigger-dice.md, in the caps table of docs/operations.md and in SECURITY.md;
- every setting the pages name is a setting the gateway or the engine reads today;
- every error code is sent by some code path, or its meaning says it never is;
- README.md links every page under docs/.
"""

from __future__ import annotations

import functools
import inspect
import re
from pathlib import Path

import pytest
from pydantic import AliasChoices

from parlour_engine.games.bigger_dice import HISTORY_KEEP, DiceConfig
from parlour_engine.games.bigger_dice import RULES as DICE_RULES
from parlour_engine.rules import RulesConfig
from parlour_engine.settings import EngineSettings
from parlour_gateway.settings import GatewaySettings
from parlour_protocol.v1 import ERROR_MEANINGS, ErrorCode, RedisKeys, limits
from parlour_protocol.v1 import keys as key_layout
from parlour_protocol.v1.games import bigger_dice as dice_protocol
from tests.support.paths import REPO_ROOT

DOCS = REPO_ROOT / "docs"

_TAG_BUILDERS = frozenset({"room_tag"})
"""`RedisKeys` methods that build a hash tag every room key starts with, not a key."""

_ROW_KEY = re.compile(r"^\| `([^`]+)` \|")


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _built_keys() -> dict[str, str]:
    """Method name -> the key it builds, each argument a `<parameter name>` placeholder."""
    keys = RedisKeys()
    built: dict[str, str] = {}
    for name, function in inspect.getmembers(RedisKeys, inspect.isfunction):
        if name.startswith("_") or name == "fold_room_name":
            continue
        parameters = list(inspect.signature(function).parameters)[1:]  # after self
        built[name] = getattr(keys, name)(*(f"<{p}>" for p in parameters))
    return built


def _listed_keys() -> dict[str, str]:
    """Key pattern -> its table row in docs/redis-keys.md."""
    rows: dict[str, str] = {}
    for line in _read(DOCS / "redis-keys.md").splitlines():
        match = _ROW_KEY.match(line)
        if match is not None:
            rows[match.group(1)] = line
    return rows


def _shown(number: float) -> list[str]:
    """How a doc may write a number: 86400 or 86,400; 30.0 as 30."""
    value = int(number) if float(number).is_integer() else number
    if isinstance(value, int):
        return sorted({str(value), f"{value:,}"})
    return [str(value)]


def _shows(text: str, number: float) -> bool:
    return any(re.search(rf"(?<![\d,.]){re.escape(s)}(?![\d,]|\.\d)", text) for s in _shown(number))


def _row(path: Path, label: str) -> str:
    """The table row of `path` whose first cell is `label`."""
    for line in _read(path).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells and cells[0] == label:
            return line
    raise AssertionError(f"{path.name} has no table row {label!r}")


def _default(field: str) -> float:
    default = EngineSettings.model_fields[field].default
    assert isinstance(default, int | float), field
    return default


# --- Redis keys ---------------------------------------------------------------------------


def test_every_key_redis_keys_builds_is_listed() -> None:
    listed = _listed_keys()
    built = _built_keys()
    missing = {
        name: key for name, key in built.items() if name not in _TAG_BUILDERS and key not in listed
    }
    assert not missing, f"docs/redis-keys.md does not list {missing}"
    for name in _TAG_BUILDERS:
        assert f"`{built[name]}`" in _read(DOCS / "redis-keys.md"), name


def test_every_listed_key_is_one_redis_keys_builds() -> None:
    built = set(_built_keys().values())
    stale = sorted(set(_listed_keys()) - built)
    assert not stale, f"docs/redis-keys.md lists keys no code builds: {stale}"


def test_redis_key_lifetimes_are_the_codes() -> None:
    rows = _listed_keys()
    keys = RedisKeys()
    events = rows[keys.room_events("<room_id>")]
    assert _shows(events, key_layout.REPLAY_MAX_EVENTS)
    assert _shows(events, key_layout.REPLAY_MAX_AGE_SECONDS)
    assert _shows(events, _default("engine_ended_room_ttl_seconds"))
    applied = rows[keys.room_applied("<room_id>")]
    assert _shows(applied, _default("engine_applied_ttl_seconds"))
    assert _shows(applied, _default("engine_applied_keep"))
    chat = rows[keys.room_chat("<room_id>", "<channel>")]
    assert _shows(chat, key_layout.CHAT_HISTORY_KEEP)
    assert key_layout.CHAT_HISTORY_TTL_SECONDS % 86_400 == 0
    assert f"{key_layout.CHAT_HISTORY_TTL_SECONDS // 86_400} days" in chat
    reconnect = rows[keys.reconnect("<user_id>", "<room_id>")]
    assert _shows(reconnect, key_layout.RECONNECT_TTL_SECONDS)
    assert _shows(rows[keys.user_direct_applied("<user_id>", "<msg_id>")], 86_400)
    assert _default("engine_applied_ttl_seconds") == 86_400


# --- numbers a player or an operator relies on --------------------------------------------

RULES = RulesConfig()
DICE = DiceConfig()


def test_bigger_dice_numbers_are_the_codes() -> None:
    page = DOCS / "bigger-dice.md"
    assert getattr(DICE_RULES, "config", None) == DICE  # the shipped plug-in plays by these
    assert DICE.winning_score == dice_protocol.WINNING_SCORE
    assert _shows(_row(page, "winning score"), DICE.winning_score)
    assert _shows(_row(page, "tiebreak limit"), DICE.max_tiebreakers)
    assert _shows(_row(page, "turn timer"), _default("engine_turn_timeout_seconds"))
    assert _shows(_row(page, "reconnect grace"), _default("engine_disconnect_grace_seconds"))
    assert _shows(_row(page, "server rolls chained by one command"), DICE.auto_roll_guard)
    players = _row(page, "players")
    assert f"{limits.MIN_PLAYERS} to {limits.MAX_PLAYERS}" in players
    assert _shows(_row(page, "lobby members of a waiting room"), RULES.max_lobby)
    assert RULES.max_spectators == limits.DEFAULT_MAX_SPECTATORS
    assert _shows(_row(page, "spectators"), RULES.max_spectators)
    passwords = _row(page, "wrong passwords")
    assert _shows(passwords, RULES.password_attempts)
    assert _shows(passwords, RULES.password_window_seconds)
    assert _shows(_row(page, "rounds kept in `round_history`"), HISTORY_KEEP)
    assert RULES.finished_room_seconds == _default("engine_finished_room_seconds")
    assert _shows(_row(page, "finished room kept"), _default("engine_finished_room_seconds"))
    text = _read(page)
    assert f"first to {DICE.winning_score}" in text.lower()
    assert f"at most {DICE.max_tiebreakers} tiebreaks" in text


def test_operations_caps_table_shows_the_codes_values() -> None:
    page = DOCS / "operations.md"
    assert _shows(_row(page, "lobby members of a waiting room"), RULES.max_lobby)
    assert _shows(_row(page, "spectators"), RULES.max_spectators)
    passwords = _row(page, "wrong room passwords")
    assert _shows(passwords, RULES.password_attempts)
    assert _shows(passwords, RULES.password_window_seconds)
    assert _shows(passwords, RULES.password_failure_users)
    assert _shows(_row(page, "a finished room"), _default("engine_finished_room_seconds"))
    assert _shows(_row(page, "a waiting room with every member gone"), RULES.idle_room_seconds)
    assert _shows(_row(page, "banned users per room"), limits.MAX_BANNED_PER_ROOM)
    assert _shows(_row(page, "users one member may mute per room"), limits.MAX_MUTED_PER_USER)


def test_security_page_shows_the_codes_values() -> None:
    text = _read(REPO_ROOT / "SECURITY.md")
    assert f"lobby {RULES.max_lobby}, spectators {RULES.max_spectators}" in text
    assert (
        f"{RULES.password_attempts} wrong tries per user per room per "
        f"{RULES.password_window_seconds} s" in text
    )
    finished = _default("engine_finished_room_seconds")
    assert f"`ENGINE_FINISHED_ROOM_SECONDS` {finished:g} s" in text


# --- setting names -----------------------------------------------------------------------

_PAGES = (
    "docs/architecture.md",
    "docs/operations.md",
    "docs/redis-keys.md",
    "docs/bigger-dice.md",
    "docs/adding-a-game.md",
    "SECURITY.md",
)
_SETTING_PREFIXES = (
    "ALLOWED_",
    "AUTH_",
    "ENGINE_",
    "GATEWAY_",
    "JWT_",
    "KAFKA_",
    "LOG_",
    "PRESENCE_",
    "REDIS_",
    "SHUTDOWN_",
    "WS_",
)
_NOT_SETTINGS = frozenset({"AUTH_DEV_MODE_ENABLED"})
"""Upper-case names with a setting's prefix that are something else (a log event)."""
_CODE_NAME = re.compile(r"`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)`")


def _setting_names() -> tuple[frozenset[str], frozenset[str]]:
    """The variables the services read, and the deprecated old names they still accept."""
    current: set[str] = set()
    deprecated: set[str] = set()
    for cls in (GatewaySettings, EngineSettings):
        for name, field in cls.model_fields.items():
            current.add(name.upper())
            if isinstance(field.validation_alias, AliasChoices):
                deprecated.update(
                    str(alias).upper() for alias in field.validation_alias.choices[1:]
                )
    return frozenset(current), frozenset(deprecated - current)


@pytest.mark.parametrize("page", _PAGES)
def test_settings_the_page_names_exist(page: str) -> None:
    """A deprecated old name may appear only in a paragraph that says it is deprecated."""
    current, deprecated = _setting_names()
    stale: set[str] = set()
    for paragraph in re.split(r"\n\s*\n", _read(REPO_ROOT / page)):
        allowed = current | _NOT_SETTINGS
        if "deprecated" in paragraph:
            allowed |= deprecated
        stale.update(
            name
            for name in _CODE_NAME.findall(paragraph)
            if name.startswith(_SETTING_PREFIXES) and name not in allowed
        )
    assert not stale, f"{page} names settings no service reads (renamed?): {sorted(stale)}"


# --- error codes and links ----------------------------------------------------------------

_CODE_USE = re.compile(r"ErrorCode\.([A-Z_]+)\b(?!\s*:)")


@functools.cache
def _codes_used_by_the_services() -> frozenset[str]:
    used: set[str] = set()
    for root in (REPO_ROOT / "services", REPO_ROOT / "libs"):
        for path in root.rglob("*.py"):
            used.update(_CODE_USE.findall(_read(path)))
    return frozenset(used)


@pytest.mark.parametrize("code", list(ErrorCode), ids=lambda c: c.value)
def test_error_code_is_sent_or_documented_as_never_sent(code: ErrorCode) -> None:
    never_sent = "never sent" in ERROR_MEANINGS[code]
    sent = code.name in _codes_used_by_the_services()
    assert sent != never_sent, (
        f"{code.value}: {'sent by the code' if sent else 'never sent'}, "
        f"but its meaning says {ERROR_MEANINGS[code]!r}"
    )


def test_readme_links_every_docs_page() -> None:
    readme = _read(REPO_ROOT / "README.md")
    for page in sorted(DOCS.glob("*.md")):
        assert f"(docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"
