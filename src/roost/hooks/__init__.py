"""Broker hooks that ship with Roost, as examples and for use (docs/hooks.md).

Load them by path or by entry point name (``roost.hooks`` group) from ``[[hooks]]``:

- ``roost.hooks.webhook:WebhookForwarder`` (``"webhook"``): POSTs messages matching
  topic filters to an HTTP endpoint, from a bounded queue, with retries.
- ``roost.hooks.json_schema:JsonSchemaValidator`` (``"json_schema"``): drops PUBLISHes
  whose payload does not match the JSON schema of their topic filter.

Both need the ``roost[hooks]`` extra (aiohttp, jsonschema).
"""
