"""Testing an application against Roost: a broker in a background thread, and helpers.

::

    from roost.testing import RunningBroker, config_for_tests

    with RunningBroker(config_for_tests()) as broker:
        run_my_app(port=broker.port)
        broker.publish("app/in", "hello")

The pytest plugin (``roost.testing.pytest_plugin``, installed with Roost through the
``pytest11`` entry point) builds its fixtures from these. See docs/testing.md.
"""

from roost.testing.broker import RunningBroker, Watcher, config_for_tests
from roost.testing.messages import wait_for_message

__all__ = ["RunningBroker", "Watcher", "config_for_tests", "wait_for_message"]
