"""A minimal OTLP/HTTP trace receiver for crates/vigil/tests/otlp_export.rs.

usage: otlp_receiver.py OUT.jsonl [--fail-first N]

Listens on 127.0.0.1 (a free port, printed as `listening <port>` on the
first line of stdout) for POST /v1/traces, decodes each body with the
official opentelemetry-proto classes (protobuf, or OTLP/JSON through
google.protobuf.json_format after turning the spec's hex ids into the
base64 that proto3 JSON expects), and appends one JSON line per request to
OUT.jsonl: {"status", "content_type", "headers", "spans": [...]}. The first
N requests are answered 503 (to exercise the exporter's retries); a body
that does not decode is answered 400 with the reason.
"""

import base64
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

OUT = sys.argv[1]
FAIL_FIRST = int(sys.argv[sys.argv.index("--fail-first") + 1]) if "--fail-first" in sys.argv else 0
LOCK = threading.Lock()
STATE = {"requests": 0}


def hex_to_b64(value, size, field, allow_empty):
    """An OTLP/JSON id (hex, case-insensitive) as proto3 JSON's base64."""
    if value == "" and allow_empty:
        return ""
    raw = bytes.fromhex(value)  # ValueError on anything but hex
    if len(raw) != size:
        raise ValueError(f"{field}: expected {size} bytes of hex, got {value!r}")
    return base64.b64encode(raw).decode()


def parse_json(body):
    doc = json.loads(body)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                span["traceId"] = hex_to_b64(span.get("traceId", ""), 16, "traceId", False)
                span["spanId"] = hex_to_b64(span.get("spanId", ""), 8, "spanId", False)
                if "parentSpanId" in span:
                    span["parentSpanId"] = hex_to_b64(span["parentSpanId"], 8, "parentSpanId", True)
                for link in span.get("links", []):
                    link["traceId"] = hex_to_b64(link.get("traceId", ""), 16, "links.traceId", False)
                    link["spanId"] = hex_to_b64(link.get("spanId", ""), 8, "links.spanId", False)
    request = ExportTraceServiceRequest()
    json_format.ParseDict(doc, request)  # unknown fields are an error
    return request


def any_value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind in ("string_value", "bool_value", "double_value"):
        return getattr(v, kind)
    if kind == "int_value":
        return int(v.int_value)
    return json_format.MessageToDict(getattr(v, kind))


def flatten(request):
    out = []
    for rs in request.resource_spans:
        resource = {a.key: any_value(a.value) for a in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(
                    {
                        "service_name": resource.get("service.name"),
                        "scope": ss.scope.name,
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "name": s.name,
                        "kind": int(s.kind),
                        "start_ns": int(s.start_time_unix_nano),
                        "end_ns": int(s.end_time_unix_nano),
                        "status_code": int(s.status.code),
                        "attributes": {a.key: any_value(a.value) for a in s.attributes},
                    }
                )
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        content_type = self.headers.get("Content-Type", "")
        with LOCK:
            STATE["requests"] += 1
            n = STATE["requests"]
        record = {
            "path": self.path,
            "content_type": content_type,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "spans": [],
        }
        if self.path != "/v1/traces":
            record["status"] = 404
            self.answer(404, "text/plain", b"not found")
        elif n <= FAIL_FIRST:
            record["status"] = 503
            self.answer(503, "text/plain", b"try again")
        else:
            try:
                if content_type == "application/x-protobuf":
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    reply = (content_type, ExportTraceServiceResponse().SerializeToString())
                elif content_type == "application/json":
                    request = parse_json(body)
                    reply = (content_type, b"{}")
                else:
                    raise ValueError(f"unsupported content type {content_type!r}")
                record["spans"] = flatten(request)
                record["status"] = 200
                self.answer(200, *reply)
            except Exception as err:  # noqa: BLE001 - the reason goes back to the test
                record["status"] = 400
                record["error"] = repr(err)
                self.answer(400, "text/plain", repr(err).encode())
        with LOCK:
            with open(OUT, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
