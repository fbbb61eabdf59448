"""The README's picture of the live page: `python -m bench.web_screenshot [--out docs/web/live.png]`.

Starts the main job's pair at 256 px with `--web` in a process of its own, opens the page in headless
Chromium (Debian's `chromium` and `chromium-driver`, through Selenium) and saves a screenshot once the
run is past --at iterations.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    from bench.browser import chromium, wait_for
    p = argparse.ArgumentParser(prog="python -m bench.web_screenshot", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "web" / "live.png"))
    p.add_argument("--at", type=int, default=60)
    args = p.parse_args(argv)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    samples = ROOT / "nst_jax" / "samples"
    run = subprocess.Popen([sys.executable, "-m", "nst_jax.run", str(samples / "chelsea.png"),
                            str(samples / "starry_night.jpg"), "--size", "256", "--iterations", "300",
                            "-o", str(Path(tempfile.mkdtemp()) / "r.png"), "--web", str(port), "--quiet"],
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
    browser = chromium(window=(1280, 900))
    try:
        wait_for(f"http://127.0.0.1:{port}/state.json")
        browser.get(f"http://127.0.0.1:{port}/")
        while int(browser.find_element("id", "iteration").text or 0) < args.at:
            time.sleep(0.2)
        time.sleep(0.5)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(args.out)
        print(f"wrote {args.out}")
    finally:
        browser.quit()
        run.terminate()
        run.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
