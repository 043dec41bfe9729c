"""The soak's result: a JSON document (everything measured) and a markdown summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MB = 2**20


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / MB:.1f}"


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [
        f"# Soak: {s['minutes']:g} min, {s['connections']:,} connections, "
        f"{result['topology']} topology",
        "",
        f"- when: {result['started_at']} to {result['finished_at']} (UTC)",
        f"- Kafka {result['kafka']}; Redis {result['redis']} ({result['redis_masters']} "
        f"master{'s' if result['redis_masters'] != 1 else ''}); key and topic prefix "
        f"`{result['prefix']}`",
        f"- 2 gateways, 2 engines; load: {s['load_processes']} processes, players "
        f"{s['players']:.0%} (pairs, think {s['think']} s), chatters {s['chatters']:.0%}, "
        f"listers {s['listers']:.0%}, the rest idle (heartbeat every {s['heartbeat']} s)",
        f"- engine room lifetimes for the soak: ENGINE_IDLE_ROOM_SECONDS="
        f"{s['engine_room_seconds']}, ENGINE_FINISHED_ROOM_SECONDS={s['engine_room_seconds']}, "
        f"ENGINE_ENDED_ROOM_TTL_SECONDS={s['engine_ended_room_ttl_seconds']}, "
        f"ENGINE_APPLIED_TTL_SECONDS={s['engine_applied_ttl_seconds']}",
        f"- machine: {result['machine']}",
        "",
        "## Processes (RSS, MB)",
        "",
        "| process | start (no users) | first full-load sample | last full-load sample "
        "| peak | end (everyone left) | CPU s | exit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in result["processes"]:
        lines.append(
            f"| {p['name']} | {_mb(p['rss_start'])} | {_mb(p['rss_loaded_first'])} | "
            f"{_mb(p['rss_loaded_last'])} | {_mb(p['rss_peak'])} | {_mb(p['rss_end'])} | "
            f"{p['cpu_seconds'] if p['cpu_seconds'] is not None else '-'} | {p['exit_code']} |"
        )
    r = result["redis_memory"]
    lines += [
        "",
        "## Redis (summed over the masters)",
        "",
        "| | start | first full-load sample | last full-load sample | end |",
        "|---|---|---|---|---|",
        f"| used_memory MB | {_mb(r['used_memory_start'])} | {_mb(r['used_memory_loaded_first'])}"
        f" | {_mb(r['used_memory_loaded_last'])} | {_mb(r['used_memory_end'])} |",
        f"| DBSIZE | {r['dbsize_start']} | {r['dbsize_loaded_first']} | "
        f"{r['dbsize_loaded_last']} | {r['dbsize_end']} |",
        f"| keys under the prefix | {r['prefix_keys_start']} | {r['prefix_keys_loaded_first']} | "
        f"{r['prefix_keys_loaded_last']} | {r['prefix_keys_end']} |",
        f"| their MEMORY USAGE MB | {_mb(r['prefix_bytes_start'])} | "
        f"{_mb(r['prefix_bytes_loaded_first'])} | {_mb(r['prefix_bytes_loaded_last'])} | "
        f"{_mb(r['prefix_bytes_end'])} |",
        "",
    ]
    if result["topology"] == "single":
        lines += [
            "used_memory and DBSIZE are the whole Redis, shared with whatever else uses it; "
            "the prefix rows are the soak's own keys.",
            "",
        ]
    g, load = result["games"], result["load"]
    lines += [
        "## Load",
        "",
        f"- connections: {load['connected_peak']:,} of {s['connections']:,} at the peak, "
        f"all open after {load['connect_seconds']} s; connect failures "
        f"{load['connect_failures'] or 'none'}",
        f"- games: {g['finished']:,} finished of {g['started']:,} started; not finished: "
        f"{g['failed'] or 'none'}",
        f"- commands: {load['commands']:,} ({result['commands_per_sec_mean']:.1f}/s on average "
        f"under load), frames received {load['frames_in']:,}",
        f"- chat lines {load['chat_lines']:,}, room lists {load['lists']:,}, leaves "
        f"{load['leaves']:,} (failed {load['leave_failures']}), rolls tried again "
        f"{load['roll_retries']:,}",
        f"- system.error codes: {result['errors'] or 'none'}",
        f"- timeouts (no answer in time): {result['timeouts'] or 'none'}",
        f"- sockets closed by a gateway: {load['closes'] or 'none'}",
        "",
        "## Samples (every 30 s)",
        "",
        "| t s | label | connected | games finished | commands/s | errors | RSS MB "
        + " / ".join(p["name"] for p in result["processes"])
        + " | used_memory MB | prefix keys |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for sample in result["samples"]:
        rss = " / ".join(_mb(sample["rss"].get(p["name"])) for p in result["processes"])
        lines.append(
            f"| {sample['t']:.0f} | {sample['label']} | {sample['load']['connected']} | "
            f"{sample['load']['games_finished']} | {sample['commands_per_sec']:.1f} | "
            f"{sample['load']['errors_total']} | {rss} | "
            f"{_mb(sample['redis']['used_memory'])} | {sample['redis']['prefix_keys']} |"
        )
    c = result["cleanup"]
    lines += [
        "",
        "## Keys left once every user had left",
        "",
        f"Waited {c['seconds']:.0f} s (polling, at most {c['timeout']} s"
        + (", until none were left" if c["until_empty"] else ", until only expiring ones were")
        + f"){' - TIMED OUT' if c['timed_out'] else ''}.",
        "",
    ]
    if not c["keys_left"]:
        lines.append("None.")
    else:
        lines += ["| shape | count | TTL s | verdict | why |", "|---|---|---|---|---|"]
        for k in c["keys_left"]:
            ttl = "none" if k["ttl_max"] is None else f"{k['ttl_min']}..{k['ttl_max']}"
            if k["without_ttl"] and k["ttl_max"] is not None:
                ttl += f", {k['without_ttl']} none"
            lines.append(f"| `{k['shape']}` | {k['count']} | {ttl} | {k['verdict']} | {k['why']} |")
    if c["rooms_left"]:
        lines += ["", f"Rooms still stored, by status: {c['rooms_left']}"]
    lines += [
        "",
        f"Leaks: {len(c['leaks'])} shape(s)"
        + ("" if not c["leaks"] else ": " + ", ".join(f"`{k['shape']}`" for k in c["leaks"])),
        "",
        f"After the services stopped: {c['after_stop'] or 'no keys'}",
        "",
        f"**Result: {'OK' if result['ok'] else 'NOT OK'}**"
        + ("" if result["ok"] else f" ({'; '.join(result['problems'])})"),
        "",
    ]
    return "\n".join(lines)


def write(result: dict[str, Any], json_path: Path, md_path: Path) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    md_path.write_text(markdown(result))
