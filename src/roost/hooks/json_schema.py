"""A broker hook that drops PUBLISHes whose JSON payload breaks the schema of their topic.

Config (docs/hooks.md)::

    [[hooks]]
    path = "json_schema"          # or "roost.hooks.json_schema:JsonSchemaValidator"
    [hooks.options.schemas]
    "sensors/+/reading" = { type = "object", required = ["value"] }
    "orders/#" = "schemas/order.json"   # a file holding the schema

Every schema whose filter matches a message's topic must accept its payload, parsed as
JSON; topics no filter matches pass unchecked. A payload that is not JSON (or not
UTF-8) on a checked topic is refused like one that breaks the schema. A refused
message is not routed; MQTT 5 publishers get PUBACK/PUBREC 0x99 (Payload format
invalid), or ``reason_code`` from the options; it is counted in the broker's
``$SYS/broker/messages/dropped/hook`` and here (``accepted``, ``refused``).

Schemas are checked when the broker starts (a bad one stops it with the reason), with
the draft their ``$schema`` names, by default the latest jsonschema supports.
Validation runs inline on the event loop (plain ``on_publish``): keep schemas for
small, frequent messages simple.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

from jsonschema import validators
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator

from roost.broker import Drop, Hook, MessageView
from roost.broker.auth.base import ClientInfo
from roost.codec import PubackReasonCode
from roost.hooks.filters import TopicFilters

log = logging.getLogger("roost.hooks.json_schema")

__all__ = ["JsonSchemaValidator"]


class JsonSchemaValidator(Hook):
    """``on_publish``: drop payloads that break the JSON schema of a matching filter."""

    def __init__(self, options: Mapping[str, object] | None = None) -> None:
        super().__init__(options)
        unknown = set(self.options) - {"schemas", "reason_code"}
        if unknown:
            raise ValueError(f"unknown options: {', '.join(sorted(unknown))}")
        schemas = self.options.get("schemas")
        if not isinstance(schemas, Mapping) or not schemas:
            raise ValueError("options.schemas must be a table of topic filter = schema")
        reason_code = self.options.get("reason_code", PubackReasonCode.PAYLOAD_FORMAT_INVALID)
        if not isinstance(reason_code, int) or not 0 <= reason_code <= 0xFF:
            raise ValueError(f"options.reason_code must be a reason code, got {reason_code!r}")
        self._drop = Drop("payload does not match its JSON schema", reason_code)
        self._filters: TopicFilters[Validator] = TopicFilters(
            (str(topic_filter), _validator(str(topic_filter), schema))
            for topic_filter, schema in schemas.items()
        )
        self.accepted = 0  # checked and valid
        self.refused = 0  # checked and dropped

    def on_publish(self, client: ClientInfo, message: MessageView) -> Drop | None:
        checks = self._filters.match(message.topic)
        if not checks:
            return None
        try:
            document = json.loads(message.payload)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are
            return self._refuse(client, message, f"not JSON: {exc}")
        for validator in checks:
            if not validator.is_valid(document):
                error = best_match(validator.iter_errors(document))
                return self._refuse(client, message, error.message if error else "invalid")
        self.accepted += 1
        return None

    def _refuse(self, client: ClientInfo, message: MessageView, why: str) -> Drop:
        self.refused += 1
        log.debug(
            "Dropped the message of client %s on %r: %s.", client.client_id, message.topic, why
        )
        return self._drop


def _validator(topic_filter: str, schema: object) -> Validator:
    where = f"schema of {topic_filter!r}"
    if isinstance(schema, str):
        try:
            schema = json.loads(Path(schema).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{where}: cannot read {schema!r}: {exc}") from exc
    if not isinstance(schema, Mapping):
        raise TypeError(f"{where}: expected a table or a file name")
    schema = dict(schema)
    cls = validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except Exception as exc:  # jsonschema's SchemaError
        raise ValueError(f"{where} is not a valid schema: {exc}") from exc
    return cls(schema)
