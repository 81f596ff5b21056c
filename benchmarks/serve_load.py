"""The page under load, as a client sees it: `ddream serve` in its own process, then (1) the heaviest
single requests the controls allow, one at a time, each with the server's resident memory sampled
every 20 ms (peak over idle); (2) drawings sent with a 6000x6000 background and layers (never
decoded; more than one layer refused); (3) N concurrent requests, counting the ones that failed; (4) the size of the page's
temporary folder afterwards.

    python benchmarks/serve_load.py --state-dir RUNS/main [--concurrent 300]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageDraw


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Peak:
    """The highest resident memory of a process while a block runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self.running = pid, 0.0, False

    def __enter__(self):
        self.running, self.peak = True, rss_mib(self.pid)
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_mib(self.pid))
            time.sleep(0.02)

    def __exit__(self, *exc) -> None:
        self.running = False
        self.thread.join()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--concurrent", type=int, default=300)
    args = parser.parse_args()
    from gradio_client import Client, handle_file

    temp = Path(tempfile.mkdtemp(prefix="serve-load-"))
    port = free_port()
    env = {**os.environ, "TMPDIR": str(temp)}
    cmd = [sys.executable, "-m", "ddream", "serve", "--state-dir", str(args.state_dir),
           "--port", str(port), "--quiet"]  # fmt: skip
    server = subprocess.Popen(cmd, env=env)
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit("ddream serve did not start") from None
                time.sleep(0.5)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        client.predict(["1"], 4, 0, "student", 0, 0, api_name="/generate")  # warm
        time.sleep(1)
        idle = rss_mib(server.pid)
        print(f"idle: {idle:.0f} MiB resident")

        stroke = temp / "stroke.png"
        im = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
        ImageDraw.Draw(im).line([(140, 40), (150, 240)], fill=(0, 0, 0, 255), width=20)
        im.save(stroke)
        huge = temp / "huge.png"
        Image.new("RGBA", (6000, 6000)).save(huge)
        heavy = {
            "generate 400 digits, teacher, 50 steps": (
                (list("0123456789"), 400, 1, "teacher", 50, 10.0), "/generate"),
            "generate 400 digits, student": ((list("0123456789"), 400, 1, "student", 0, 0),
                                             "/generate"),
            "morph between seeds, 40 frames, teacher": (
                ("seeds", 1, 2, "5", 0, "teacher", 40), "/morph"),
            "draw (a 280x280 composite)": (
                ({"background": None, "layers": [], "composite": handle_file(stroke)}, None, "3"),
                "/draw"),
            "draw with a 6000x6000 background and layer (neither decoded)": (
                ({"background": handle_file(huge), "layers": [handle_file(huge)],
                  "composite": handle_file(stroke)}, None, "3"), "/draw"),
            "draw with 6000x6000 layers x8 and background (refused)": (
                ({"background": handle_file(huge), "layers": [handle_file(huge)] * 8,
                  "composite": handle_file(stroke)}, None, "3"), "/draw"),
        }  # fmt: skip
        print("| request | outcome | peak resident memory over idle |")
        print("| --- | --- | --- |")
        for name, (inputs, api) in heavy.items():
            with Peak(server.pid) as peak:
                try:
                    client.predict(*inputs, api_name=api)
                    outcome = "ok"
                except Exception as e:
                    outcome = f"refused: {str(e).splitlines()[-1][:80]}"
            print(f"| {name} | {outcome} | +{peak.peak - idle:.0f} MiB |")

        def one(k: int) -> bool:
            try:
                client.predict([str(k % 10)], 8, k, "student", 0, 0, api_name="/generate")
                return True
            except Exception as e:
                print(f"request {k} failed: {e}", file=sys.stderr)
                return False

        t0 = time.perf_counter()
        with Peak(server.pid) as peak, ThreadPoolExecutor(args.concurrent) as pool:
            ok = sum(pool.map(one, range(args.concurrent)))
        took = time.perf_counter() - t0
        print(f"\n{args.concurrent} concurrent requests (8 digits each): {ok} succeeded, "
              f"{args.concurrent - ok} failed, in {took:.1f} s; peak +{peak.peak - idle:.0f} MiB")  # fmt: skip
        folders = list(temp.glob("ddream-serve-*"))
        size = sum(p.stat().st_size for f in folders for p in f.rglob("*") if p.is_file())
        count = sum(1 for f in folders for p in f.rglob("*") if p.is_file())
        print(f"the page's temporary folder: {count} files, {size / 2**20:.1f} MiB")
    finally:
        server.terminate()
        server.wait(timeout=60)
        left = list(temp.glob("ddream-serve-*"))
        print(f"after SIGTERM: exit {server.returncode}, temporary folder left: {bool(left)}")
        for p in (temp / "stroke.png", temp / "huge.png"):
            p.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
