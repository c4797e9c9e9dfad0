"""Drive a running Vigil as an instrumented caller with the OpenTelemetry
Python SDK.

    python otel_sdk.py HOST:PORT

The caller is service `checkout`. Twice it starts a CLIENT span, injects
it into a scoring request to Vigil and exports the span to Vigil's
`POST /v1/traces` with the SDK's OTLP/HTTP exporter (protobuf, gzip):

  w3c   - `traceparent` from the W3C propagator; the `traceresponse`
          answer must carry the same trace id.
  xray  - `X-Amzn-Trace-Id` from the AWS X-Ray propagator; the answer's
          `X-Amzn-Trace-Id`, extracted by the same propagator, must hold
          the same trace id, a sampled flag, and as its parent Vigil's
          root span (the span id `traceresponse` names).

Every export must succeed. Prints one JSON line:
{"w3c": {"trace_id", "span_id"}, "xray": {"trace_id", "span_id", "vigil_root"}}
with ids in hex, for the Rust side to check the stored traces and the
service map. Exits 1 on the first failing check.
"""

from __future__ import annotations

import json
import sys
import urllib.request

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

ROW = {
    "amount": 912.5,
    "merchant_category": 5,
    "hour": 3,
    "card_age_days": 12,
    "tx_last_hour": 4,
    "distance_from_home_km": 800,
    "foreign": 1,
    "new_device": 1,
}


def fail(message: str) -> None:
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


class Checked(SpanExporter):
    """The OTLP exporter, failing the run when an export does not succeed."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.exported = 0

    def export(self, spans):
        result = self.inner.export(spans)
        if result is not SpanExportResult.SUCCESS:
            fail(f"export of {len(spans)} spans to /v1/traces: {result}")
        self.exported += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()


def score(addr: str, headers: dict[str, str]):
    body = json.dumps({"features": ROW}).encode()
    request = urllib.request.Request(
        f"http://{addr}/v1/models/fraud/score",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            fail(f"score answered {response.status}")
        response.read()
        return response.headers


def main() -> None:
    addr = sys.argv[1]
    exporter = Checked(
        OTLPSpanExporter(
            endpoint=f"http://{addr}/v1/traces",
            compression=Compression.Gzip,
            timeout=10,
        )
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("checkout")
    out = {}

    # W3C trace context.
    with tracer.start_as_current_span("score fraud", kind=SpanKind.CLIENT) as span:
        ctx = span.get_span_context()
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        if "traceparent" not in carrier:
            fail(f"no traceparent injected: {carrier}")
        answer = score(addr, carrier)
        trace_id = format(ctx.trace_id, "032x")
        response = answer.get("traceresponse") or ""
        if response.split("-")[1:2] != [trace_id]:
            fail(f"traceresponse {response!r} is not in trace {trace_id}")
        out["w3c"] = {"trace_id": trace_id, "span_id": format(ctx.span_id, "016x")}

    # AWS X-Ray: the propagator injects X-Amzn-Trace-Id and reads Vigil's back.
    xray = AwsXRayPropagator()
    with tracer.start_as_current_span("score fraud (x-ray)", kind=SpanKind.CLIENT) as span:
        ctx = span.get_span_context()
        carrier = {}
        xray.inject(carrier)
        header = carrier.get("X-Amzn-Trace-Id")
        if not header:
            fail(f"no X-Amzn-Trace-Id injected: {carrier}")
        answer = score(addr, {"X-Amzn-Trace-Id": header})
        if not answer.get("X-Amzn-Trace-Id"):
            fail("the answer has no X-Amzn-Trace-Id")
        # `answer` is an email.message.Message: header names case-insensitive.
        back = trace.get_current_span(xray.extract(answer, context={})).get_span_context()
        if not back.is_valid:
            fail(f"the answer's X-Amzn-Trace-Id does not extract: {answer.get('X-Amzn-Trace-Id')!r}")
        if back.trace_id != ctx.trace_id:
            fail(
                f"trace id {back.trace_id:032x} came back, {ctx.trace_id:032x} was sent "
                f"({header!r} -> {answer.get('X-Amzn-Trace-Id')!r})"
            )
        if not back.trace_flags.sampled:
            fail(f"the answer is not sampled: {answer.get('X-Amzn-Trace-Id')!r}")
        if back.span_id == ctx.span_id:
            fail("the answer's Parent is the caller's span, not Vigil's")
        vigil_root = format(back.span_id, "016x")
        response = answer.get("traceresponse") or ""
        if response.split("-")[2:3] != [vigil_root]:
            fail(f"X-Amzn-Trace-Id's Parent {vigil_root} is not traceresponse's span: {response!r}")
        out["xray"] = {
            "trace_id": format(ctx.trace_id, "032x"),
            "span_id": format(ctx.span_id, "016x"),
            "vigil_root": vigil_root,
        }

    provider.shutdown()
    if exporter.exported != 2:
        fail(f"{exporter.exported} spans exported, expected 2")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
