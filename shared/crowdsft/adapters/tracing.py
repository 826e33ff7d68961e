"""Traces that follow one feedback from the gateway, through Kafka, to intake's store write.

FastStream's telemetry middleware makes the publish and consume spans and carries the trace
context in Kafka headers (W3C `traceparent`). A batch consumer's span starts a trace of its
own (linked to each record's), so the store write is recorded once per record as well, as a
child of that record's own context: each feedback's trace then reaches the write that kept it.
Spans are exported only when an OTLP endpoint is configured.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry import propagate, trace

from crowdsft.settings import Settings

TRACER_NAME = "crowdsft"


def configure_tracing(settings: Settings, service: str) -> None:
    """Once per process, and only where spans go somewhere (an OTLP endpoint): making spans
    nobody exports cost intake a fifth of its time. A provider set already (by a test, say)
    is left as it is. The SDK is imported here: every process with a broker imports this
    module, only traced services need it."""
    if not settings.otlp_endpoint or traced():
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"crowdsft-{service}"}))
    endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)


def traced() -> bool:
    """Whether this process has a tracer provider of its own (the default is a no-op proxy)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def telemetry_middlewares(settings: Settings) -> tuple[KafkaTelemetryMiddleware, ...]:
    """FastStream's telemetry middleware where this process traces or will (its OTLP endpoint
    is set; services configure tracing as they start); none otherwise, so a message costs no
    spans, attributes or header injection that nobody reads."""
    if settings.otlp_endpoint or traced():
        return (KafkaTelemetryMiddleware(),)
    return ()


def headers_of(record: object) -> dict[str, str]:
    raw: Sequence[tuple[str, bytes]] = getattr(record, "headers", None) or ()
    return {k: v.decode("utf-8", "replace") for k, v in raw}


def record_per_record(
    name: str, records: Iterable[object], start_ns: int, end_ns: int, **attributes: str | int
) -> None:
    """One finished span per record, parented by the trace context its headers carry, all
    with the timing of the one batched operation they shared."""
    if not traced():
        return
    tracer = trace.get_tracer(TRACER_NAME)
    for record in records:
        parent = propagate.extract(headers_of(record))
        span = tracer.start_span(name, context=parent, start_time=start_ns, attributes=attributes)
        span.end(end_time=end_ns)
