#!/usr/bin/env python3
"""Writes an `eventsourcing export` file of N events (default 1,000,000) for the `copy`
figure in docs/PERFORMANCE.md: streams of 10 events saved one after another, payloads of
about 60 bytes, one event in 100 with correlation and user metadata.

    python3 cli/bench/gen_export.py 1000000 > events.jsonl
"""
import json
import sys
import uuid

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
out = sys.stdout
start = 1_796_000_000_000_000
out.write(json.dumps({"format": "eventsourcing-export", "format_version": 1,
                      "export_id": str(uuid.uuid4()), "source_backend": "generated",
                      "exported_at": "2026-12-01T00:00:00.000000Z", "max_position": n},
                     separators=(",", ":")) + "\n")
stream = None
for i in range(n):
    version = i % 10 + 1
    if version == 1:
        stream = str(uuid.uuid4())
    event = {"position": i + 1, "stream_id": stream, "version": version,
             "topic": "Dog.Registered" if version == 1 else "Dog.TrickAdded",
             "schema_version": 1 if version == 1 else 2,
             "event_id": str(uuid.uuid4()), "timestamp": start + i}
    if i % 100 == 0:
        event["correlation_id"] = str(uuid.uuid4())
        event["user"] = {"user": "bench"}
    payload = ('{"name":"dog-%d"}' % i) if version == 1 else ('{"trick":"trick number %d","level":%d}' % (i, version))
    line = json.dumps(event, separators=(",", ":"))
    out.write(line[:-1] + ',"payload":' + payload + "}\n")
out.write('{"end":true,"events":%d}\n' % n)
