"""The outcome of a run: the ``RESULT key=value ...`` line, a human summary, a status.

The keys follow mqttload's where they mean the same thing (``msgs_per_s``, ``p99_us``,
``lost``, ``conn_per_s``, ``broker_rss_kb`` ...), so one harness can read either tool.
``generator=roost-bench`` says which one wrote the line.

Status and exit code, as mqttload: ``ok`` (0); ``LOSS`` (QoS 1/2 messages missing),
``LOSS_QOS0`` (QoS 0 loss above ``--max-loss``), ``DUP_QOS2``, ``UNACKED`` (2);
``CONN_FAILED`` (connects failed or connections dropped), ``ABORTED`` (3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from roost.loadtest import procstats
from roost.loadtest.plan import Settings
from roost.loadtest.stats import SubscriberCounts
from roost.loadtest.worker import ConnectReport, PublishReport, StatusReport

Value = int | float | str
EXIT_OK = 0
EXIT_LOSS = 2
EXIT_CONNECT = 3
GENERATOR = "roost-bench"


@dataclass(slots=True)
class Outcome:
    """What a run reports: the RESULT fields, status, exit code, human summary, errors."""

    fields: dict[str, Value]
    status: str
    exit_code: int
    summary: str
    errors: list[str]

    def result_line(self) -> str:
        return "RESULT " + " ".join(f"{key}={_text(value)}" for key, value in self.fields.items())


@dataclass(slots=True)
class Totals:
    """Everything the workers reported, added up; what ``summarize`` turns into an Outcome."""

    settings: Settings
    clients: int
    connect: ConnectReport = field(default_factory=ConnectReport)
    status: StatusReport | None = None  # after the hold (conn)
    publish: PublishReport = field(default_factory=PublishReport)
    counts: SubscriberCounts = field(default_factory=SubscriberCounts)
    expected: int = 0
    final_status: StatusReport = field(default_factory=StatusReport)
    gen_cpu_s: float = 0.0
    window_s: float = 0.0  # publish command to the end of the drain
    broker_start: procstats.ProcSample | None = None
    broker_connected: procstats.ProcSample | None = None
    broker_held: procstats.ProcSample | None = None
    broker_before: procstats.ProcSample | None = None
    broker_after: procstats.ProcSample | None = None
    broker_connect_cpu_pct: float | None = None
    aborted: str | None = None


def _text(value: Value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.0f}"
    return str(value).replace(" ", "_")


def _put(fields: dict[str, Value], key: str, value: float | None) -> None:
    fields[key] = "NA" if value is None else value


def _rate(count: int, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds > 0 else None


def summarize(totals: Totals, elapsed: float) -> Outcome:
    settings = totals.settings
    fields: dict[str, Value] = {
        "generator": GENERATOR,
        "scenario": settings.scenario if settings.scenario != "pubsub" else settings.shape,
        "clients": totals.clients,
        "processes": settings.processes,
        "qos": settings.qos,
        "size": settings.size,
        "version": settings.version,
    }
    connect = totals.connect
    fields["connected"] = connect.connected
    fields["failed"] = connect.failed
    fields["subscriptions"] = connect.subscriptions
    # First connect to the last client ready (CONNACK, and its SUBACKs); NA when no
    # client got ready (last_ns is then unset, and the difference meaningless).
    connect_s = _connect_seconds(connect)
    _put(fields, "connect_secs", None if connect_s is None else round(connect_s, 3))
    counts = totals.counts
    publish = totals.publish
    lost = max(0, totals.expected - counts.unique)
    if settings.scenario == "conn":
        _conn_fields(fields, totals)
    else:
        _flow_fields(fields, totals)
    fields["received"] = counts.received
    fields["lost"] = lost
    fields["dup"] = counts.dup
    fields["reorder"] = counts.reorder
    fields["invalid"] = counts.invalid
    fields["unacked"] = publish.unacked
    final = totals.final_status
    fields["alive"] = final.alive
    fields["pings"] = final.pings
    fields["pongs"] = final.pongs
    fields["ping_timeouts"] = final.ping_timeouts
    _put(fields, "gen_cpu_pct", _pct(totals.gen_cpu_s, _busy_seconds(totals)))
    fields["gen_cpu_s"] = round(totals.gen_cpu_s, 3)
    _broker_fields(fields, totals)
    fields["elapsed_s"] = round(elapsed, 2)
    status, code = _status(totals, lost)
    fields["status"] = status
    errors = list(connect.errors)
    if connect.failed and not connect.connected:
        errors.insert(
            0,
            f"no client could connect to {settings.host}:{settings.port} "
            f"({connect.failed} tried); the first failures follow",
        )
    if totals.aborted is not None:
        errors.insert(0, f"aborted: {totals.aborted}")
    return Outcome(fields, status, code, _human(fields), errors)


def _connect_seconds(connect: ConnectReport) -> float | None:
    if not connect.connected or not connect.first_ns or connect.last_ns < connect.first_ns:
        return None
    return (connect.last_ns - connect.first_ns) / 1e9


def _busy_seconds(totals: Totals) -> float:
    """The CPU window: first publish to last delivery, as ``secs`` (else the whole phase).

    CPU is sampled just before the publish command and after the drain; outside the
    delivery window both sides are idle, so this is the busy share while it ran.
    """
    first, last = totals.publish.first_ns, totals.counts.last_delivery_ns
    if totals.settings.scenario in ("pubsub", "conn") and first and last > first:
        return (last - first) / 1e9
    return totals.window_s


def _pct(cpu_s: float, window_s: float) -> float | None:
    return round(100 * cpu_s / window_s, 1) if window_s > 0 else None


def _flow_fields(fields: dict[str, Value], totals: Totals) -> None:
    counts = totals.counts
    publish = totals.publish
    settings = totals.settings
    fields["sent"] = publish.sent
    fields["acked"] = publish.acked
    fields["expected"] = totals.expected
    fields["unique"] = counts.unique
    lost = max(0, totals.expected - counts.unique)
    _put(fields, "loss_pct", round(100 * lost / totals.expected, 4) if totals.expected else None)
    if settings.scenario == "sub":
        seconds = settings.duration
    elif publish.first_ns and counts.last_delivery_ns > publish.first_ns:
        seconds = (counts.last_delivery_ns - publish.first_ns) / 1e9
    else:
        seconds = 0.0
    fields["secs"] = round(seconds, 3)
    _put(fields, "msgs_per_s", _rate(counts.unique, seconds))
    pub_seconds = (publish.last_ns - publish.first_ns) / 1e9 if publish.first_ns else 0.0
    fields["pub_secs"] = round(pub_seconds, 3)
    _put(fields, "pub_msgs_per_s", _rate(publish.sent, pub_seconds))
    if settings.scenario == "pub":  # nothing is received: the publish rate is the figure
        fields["secs"] = fields["pub_secs"]
        fields["msgs_per_s"] = fields["pub_msgs_per_s"]
    for key, value in counts.latency.summary().items():
        _put(fields, key, value)
    if settings.rate:
        for key, value in publish.send_lag.summary("send_lag_").items():
            _put(fields, key, value)


def _conn_fields(fields: dict[str, Value], totals: Totals) -> None:
    connect = totals.connect
    settings = totals.settings
    fields["subscribed"] = connect.connected - 1 if connect.connected else 0
    seconds = _connect_seconds(connect) or 0.0
    _put(fields, "conn_per_s", _rate(connect.connected, seconds))
    for key, value in connect.connack.summary("connack_").items():
        _put(fields, key, value)
    held = totals.status
    fields["held_s"] = settings.hold
    fields["keepalive"] = settings.keepalive
    if held is not None:
        fields["alive_after_hold"] = held.alive
    publish = totals.publish
    counts = totals.counts
    fields["verify_sent"] = publish.sent
    fields["expected"] = totals.expected
    fields["unique"] = counts.unique
    if publish.first_ns and counts.last_delivery_ns > publish.first_ns:
        fields["verify_secs"] = round((counts.last_delivery_ns - publish.first_ns) / 1e9, 3)
    _put(fields, "connect_gen_cpu_pct", _pct(connect.cpu_s, seconds))


def _broker_fields(fields: dict[str, Value], totals: Totals) -> None:
    start = totals.broker_start
    if start is None:
        return
    if totals.settings.scenario == "conn":
        fields["broker_rss_start_kb"] = start.rss_kb
        held = totals.broker_held or totals.broker_connected
        _put(fields, "broker_cpu_pct", totals.broker_connect_cpu_pct)
        if held is not None:
            fields["broker_rss_kb"] = held.rss_kb
            fields["broker_hwm_kb"] = held.hwm_kb
            connected = int(fields.get("connected", 0))
            if connected:
                fields["broker_rss_per_conn_kb"] = round(
                    (held.rss_kb - start.rss_kb) / connected, 2
                )
        return
    before, after = totals.broker_before, totals.broker_after
    _put(fields, "broker_cpu_pct", procstats.cpu_pct(before, after, _busy_seconds(totals)))
    if after is not None:
        fields["broker_rss_kb"] = after.rss_kb
        fields["broker_hwm_kb"] = after.hwm_kb


def _status(totals: Totals, lost: int) -> tuple[str, int]:
    settings = totals.settings
    if totals.aborted is not None:
        return "ABORTED", EXIT_CONNECT
    connect = totals.connect
    if connect.failed or totals.final_status.alive < connect.connected:
        return "CONN_FAILED", EXIT_CONNECT
    if lost:
        if settings.qos:
            return "LOSS", EXIT_LOSS
        if 100 * lost / max(1, totals.expected) > settings.max_loss:
            return "LOSS_QOS0", EXIT_LOSS
    if settings.qos == 2 and totals.counts.dup:
        return "DUP_QOS2", EXIT_LOSS
    if totals.publish.unacked:
        return "UNACKED", EXIT_LOSS
    return "ok", EXIT_OK


def _human(fields: dict[str, Value]) -> str:
    scenario = fields["scenario"]
    if scenario == "conn":
        return (
            f"conn: {fields['connected']} connected ({fields['failed']} failed) at "
            f"{fields.get('conn_per_s')} conn/s, CONNACK p50 {fields.get('connack_p50_us')} µs "
            f"p99 {fields.get('connack_p99_us')} µs; {fields['alive']} alive, "
            f"pings {fields['pings']}/{fields['pongs']}; verify {fields['unique']}/"
            f"{fields['expected']} received"
        )
    if scenario == "pub":  # no subscribers: what was sent is the figure
        acked = f", {fields['acked']} acknowledged" if fields["qos"] else ""
        return (
            f"pub qos{fields['qos']}: {fields['sent']} msgs sent in {fields.get('secs')} s = "
            f"{fields.get('msgs_per_s')} msg/s{acked}"
        )
    return (
        f"{scenario} qos{fields['qos']}: {fields.get('unique', fields['received'])} msgs in "
        f"{fields.get('secs')} s = {fields.get('msgs_per_s')} msg/s, "
        f"latency p50 {fields.get('p50_us')} µs p99 {fields.get('p99_us')} µs; "
        f"lost {fields['lost']} dup {fields['dup']}"
    )
