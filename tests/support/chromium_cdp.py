"""Render a local HTML file in headless Chromium and inspect it through the DevTools
protocol, spoken over ``--remote-debugging-pipe`` (JSON messages separated by NUL on file
descriptors 3 and 4): no websocket library, no network port.

``render(path)`` loads the page, waits for its load event, runs a JavaScript probe,
takes a full-page screenshot and returns what the browser said: console messages,
uncaught exceptions, log entries, and every request that was not for a ``data:`` or
``file:`` URL (a self-contained page makes none).
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--disable-default-apps", "--mute-audio", "--hide-scrollbars", "--remote-debugging-pipe",
]  # fmt: skip

#: The page facts the tests assert on, computed in the page.
PROBE = """(() => {
  const imgs = Array.from(document.images);
  return {
    title: document.title,
    headings: Array.from(document.querySelectorAll('h1,h2,h3,h4,h5')).map(h => h.textContent.trim()),
    sections: Array.from(document.querySelectorAll('section[id]')).map(s => s.id),
    images: imgs.length,
    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt || i.src.slice(0, 40)),
    figures: imgs.filter(i => i.classList.contains('fig')).length,
    faces: imgs.filter(i => i.classList.contains('face')).length,
    resources: performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith('data:')),
    scripts: document.scripts.length,
    height: document.documentElement.scrollHeight,
    best: document.querySelectorAll('td.best').length,
  };
})()"""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class Rendered:
    """What the browser reported about the page."""

    probe: dict
    console: list[dict] = field(default_factory=list)
    exceptions: list[dict] = field(default_factory=list)
    log: list[dict] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def errors(self) -> list[str]:
        out = [f"console.{c.get('type')}: {c.get('args')}" for c in self.console if c.get("type") in ("error", "assert")]
        out += [f"exception: {e.get('exceptionDetails', {}).get('text')}" for e in self.exceptions]
        out += [f"log {e.get('entry', {}).get('source')}: {e.get('entry', {}).get('text')}" for e in self.log
                if e.get("entry", {}).get("level") == "error"]
        out += [f"request failed: {u}" for u in self.failed]
        return out


class _Pipe:
    def __init__(self, proc: subprocess.Popen, write_fd: int, read_fd: int) -> None:
        self.proc, self.w, self.r = proc, write_fd, read_fd
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 60) -> dict:
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events.pop(i)
        while True:
            e = self._read(timeout)
            if e.get("method") == method:
                return e
            self.events.append(e)

    def _read(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium")
            ready, _, _ = select.select([self.r], [], [], left)
            if ready:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed the pipe (exit code {self.proc.poll()})")
                self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)


def render(html_file: str | os.PathLike, screenshot: str | os.PathLike | None = None, *, width: int = 1400,
           timeout: float = 90) -> Rendered:
    """Load ``html_file`` in headless Chromium; see the module docstring."""
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("no chromium executable (Debian: apt-get install chromium)")
    url = Path(html_file).resolve().as_uri()
    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()

    def child_fds() -> None:
        # Chromium reads commands on fd 3 and writes replies on fd 4. Move the pipe ends
        # out of the way first, in case they already are 3 or 4.
        a = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 100)
        b = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 100)
        os.dup2(a, 3)
        os.dup2(b, 4)
        os.close(a), os.close(b)

    with tempfile.TemporaryDirectory(prefix="mfrkit-chromium-") as profile:
        proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},1000", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            # close_fds=False keeps the dup2'd 3 and 4; Python's own descriptors are not
            # inheritable (PEP 446), so nothing else leaks into the browser.
            preexec_fn=child_fds, close_fds=False,
        )  # fmt: skip
        os.close(to_chrome_r), os.close(from_chrome_w)
        pipe = _Pipe(proc, to_chrome_w, from_chrome_r)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                pipe.send(f"{domain}.enable", session=session)
            pipe.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": 1000, "deviceScaleFactor": 1, "mobile": False}, session=session)
            pipe.send("Page.navigate", {"url": url}, session=session, timeout=timeout)
            pipe.wait_event("Page.loadEventFired", timeout=timeout)
            value = pipe.send("Runtime.evaluate", {"expression": PROBE, "returnByValue": True}, session=session)
            probe = value.get("result", {}).get("value") or {}
            shot = None
            if screenshot is not None:
                height = int(probe.get("height") or 1000)
                data = pipe.send("Page.captureScreenshot", {
                    "format": "png", "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
                }, session=session, timeout=timeout)["data"]  # fmt: skip
                import base64

                shot = Path(screenshot)
                shot.write_bytes(base64.b64decode(data))
            time.sleep(0.2)  # late console messages
            try:
                while True:
                    pipe.events.append(pipe._read(0.05))
            except TimeoutError:
                pass
            ev = pipe.events
            out = Rendered(
                probe=probe,
                console=[e["params"] | {"args": [a.get("value", a.get("description")) for a in e["params"].get("args", [])]}
                         for e in ev if e.get("method") == "Runtime.consoleAPICalled"],
                exceptions=[e["params"] for e in ev if e.get("method") == "Runtime.exceptionThrown"],
                log=[e["params"] for e in ev if e.get("method") == "Log.entryAdded"],
                requests=[e["params"]["request"]["url"] for e in ev if e.get("method") == "Network.requestWillBeSent"
                          and not e["params"]["request"]["url"].startswith(("data:", "file:"))],
                failed=[str(e["params"].get("errorText")) for e in ev if e.get("method") == "Network.loadingFailed"],
                screenshot=shot,
            )  # fmt: skip
            try:
                pipe.send("Browser.close", timeout=10)
            except (RuntimeError, TimeoutError):
                pass
            return out
        finally:
            os.close(to_chrome_w), os.close(from_chrome_r)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
