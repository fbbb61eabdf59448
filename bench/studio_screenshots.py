"""The README's pictures of the studio: `python -m bench.studio_screenshots [--out docs/studio]`.

Starts `nst-jax studio` on a temporary folder, then in headless Chromium (Debian's `chromium` and
`chromium-driver`, through Selenium) at 1400×950 uploads the main job's pair through the page, starts a
run at --size px and saves `running.png` once it is past --at iterations (the before/after view and the
loss plot); then runs the same pair with a larger k, saves the finished run side by side with its
content as `side-by-side.png`, ticks both and saves the comparison view as `compare.png`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WINDOW = (1400, 1093)   # headless Chromium keeps 143 px of it for a window frame: the page gets 1400×950


def _start(browser, k: float, size: int, iterations: int) -> None:
    from bench.browser import fill
    fill(browser, {"opt-style_weight": k, "opt-size": size, "opt-iterations": iterations})
    browser.find_element("id", "start").click()


def main(argv: list[str] | None = None) -> int:
    from bench.browser import chromium, until, wait_for
    p = argparse.ArgumentParser(prog="python -m bench.studio_screenshots", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "studio"))
    p.add_argument("--at", type=int, default=30)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--iterations", type=int, default=60)   # a minute or two on a CPU
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = 8700 + os.getpid() % 200
    samples = ROOT / "nst_jax" / "samples"
    studio = subprocess.Popen([sys.executable, "-m", "nst_jax", "studio", str(Path(tempfile.mkdtemp()) / "studio"),
                               "--port", str(port)], env=dict(os.environ, PYTHONPATH=str(ROOT)))
    browser = chromium(window=WINDOW)
    try:
        assert wait_for(f"http://127.0.0.1:{port}/api/state")
        browser.get(f"http://127.0.0.1:{port}/")
        browser.find_element("id", "content-file").send_keys(str(samples / "chelsea.png"))
        until(lambda: "chelsea" in browser.find_element("id", "message").text, 900, 0.2)
        browser.find_element("id", "style-files").send_keys(str(samples / "starry_night.jpg"))
        until(lambda: "starry" in browser.find_element("id", "message").text, 900, 0.2)
        _start(browser, 100, args.size, args.iterations)
        until(lambda: int(browser.find_element("id", "live-iteration").text or 0) >= args.at, 900, 0.2)
        time.sleep(1.0)
        browser.save_screenshot(str(out / "running.png"))
        print(f"wrote {out / 'running.png'}")
        _start(browser, 1000, args.size, args.iterations)
        until(lambda: [c.get_attribute("data-status") for c in browser.find_elements("css selector", ".card")]
              == ["finished", "finished"], 900, 0.2)
        browser.find_element("css selector", '#view-tools button[data-mode="side"]').click()
        time.sleep(1.0)
        browser.save_screenshot(str(out / "side-by-side.png"))
        print(f"wrote {out / 'side-by-side.png'}")
        for box in browser.find_elements("css selector", ".pick"):
            box.click()
        browser.find_element("id", "compare-button").click()
        time.sleep(1.0)
        browser.save_screenshot(str(out / "compare.png"))
        print(f"wrote {out / 'compare.png'}")
    finally:
        browser.quit()
        studio.send_signal(signal.SIGINT)
        studio.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
