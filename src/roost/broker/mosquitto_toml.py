"""A mosquitto.conf written out as Roost's TOML, with comments (``roost config convert``).

The standard library reads TOML but does not write it; the configuration is small and
flat (top-level keys, ``[[listeners]]`` and ``[[bridges]]`` tables, inline tables and
arrays of strings, numbers and booleans), so a small writer does.
"""

from __future__ import annotations

import json
import math
import re
from typing import cast

from roost.broker.mosquitto_conf import MosquittoConf

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def to_toml(conf: MosquittoConf) -> str:
    """The TOML text of a read mosquitto.conf: notices first, then keys and tables."""
    out = [
        f"# Converted from {conf.source} by `roost config convert`: Roost's configuration",
        "# (docs/configuration.md), behaving as Mosquitto 2.x did with the original",
        "# (docs/mosquitto.md). Read it with `roost broker -c FILE`.",
    ]
    if conf.notices:
        out += ["#", "# Lines with no equivalent in Roost, or applied differently:"]
        out += [f"#   {notice}" for notice in conf.notices]
    out.append("")
    for key, value in conf.data.items():
        if key != "listeners":
            out.append(_line(key, value, conf.comments.get((key,), "")))
    listeners = cast("list[dict[str, object]]", conf.data.get("listeners", []))
    comment = conf.comments.get(("listeners",))
    for index, listener in enumerate(listeners):
        out += ["", *([f"# {comment}"] if comment else []), "[[listeners]]"]
        for key, value in listener.items():
            out.append(_line(key, value, conf.comments.get(("listeners", index, key), "")))
    for bridge in conf.bridges:
        out += ["", "[[bridges]]"]
        for key, value in bridge.items():
            if key == "topics" and isinstance(value, list):
                out.append("topics = [")
                out += [f"  {_value(topic)}," for topic in value]
                out.append("]")
            else:
                out.append(_line(key, value, ""))
    return "\n".join(out) + "\n"


def _line(key: str, value: object, comment: str) -> str:
    text = f"{_key(key)} = {_value(value)}"
    return f"{text}  # {comment}" if comment else text


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"TOML has no place here for {value!r}")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _string(text: str) -> str:
    # JSON's string escapes are TOML basic-string escapes too (\" \\ \n \t \uXXXX).
    return json.dumps(text, ensure_ascii=False)
