"""E2B's official Python SDK (e2b-code-interpreter, debug mode) against the E2B data-plane rig,
for `cargo bench --bench compare` (E2B_BENCH_ONLY=e2bplane). E2B_SANDBOX_URL points it at the
rig's sandbox proxy, which routes by the E2b-Sandbox-Port header the SDK sends.

    python e2b_plane.py ROUNDS STREAM_MIB STREAM_ROUNDS

Prints one JSON line: round-trip times of run_code("1") in ms, and seconds per stream.
"""

import json
import sys
import time

from e2b_code_interpreter import Sandbox

rounds, mib, stream_rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
sbx = Sandbox.create(debug=True)
for _ in range(5):
    sbx.run_code("1")
rt = []
for _ in range(rounds):
    t = time.perf_counter()
    assert sbx.run_code("1").text == "1"
    rt.append((time.perf_counter() - t) * 1000)
code = (
    "import sys\nline = 'x' * 1023 + '\\n'\n"
    f"for _ in range({mib} * 1024):\n    sys.stdout.write(line)\nsys.stdout.flush()"
)
stream = []
for _ in range(stream_rounds):
    t = time.perf_counter()
    ex = sbx.run_code(code, timeout=600)
    took = time.perf_counter() - t
    got = sum(len(s) for s in ex.logs.stdout)
    assert got == mib << 20, got
    stream.append(took)
print(json.dumps({"roundtrip_ms": rt, "stream_s": stream}))
