"""A headless Chromium driven over the DevTools protocol (tornado's websocket client): open a page, wait for a
condition, take a screenshot. Used by the viewer tests and to take the docs' screenshot."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--no-first-run", "--disable-background-networking",
                  "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader")


def chromium() -> str | None:
    """The Chromium program (Debian's package ``chromium``), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(url: str, output: Path, *, ready_js: str, settle_s: float = 5.0, timeout_s: float = 240.0,
               size: tuple[int, int] = (1280, 800)) -> dict:
    """Open ``url``, wait until ``ready_js`` is true (or the timeout), wait ``settle_s`` more, write a PNG
    screenshot to ``output``; returns what the page said (ready, console errors, WebGL/WebGPU support, the URLs
    it sent requests to and those the browser blocked)."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                   f"--window-size={size[0]},{size[1]}", "about:blank"]
        process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        try:
            endpoint = _devtools_endpoint(process)
            return asyncio.run(_drive(endpoint, url, output, ready_js, settle_s, timeout_s))
        finally:
            process.kill()
            process.wait()


def _devtools_endpoint(process: subprocess.Popen) -> str:
    for line in process.stderr:
        match = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
        if match:
            port = match.group(1)
            pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=30).read())
            return next(page["webSocketDebuggerUrl"] for page in pages if page.get("type") == "page")
    raise RuntimeError("Chromium exited before it opened its DevTools port.")


async def _drive(endpoint: str, url: str, output: Path, ready_js: str, settle_s: float, timeout_s: float) -> dict:
    from tornado.websocket import websocket_connect

    connection = await websocket_connect(endpoint, max_message_size=256 * 2**20)
    ids = itertools.count(1)
    errors: list[str] = []
    requests: dict[str, str] = {}  # request id -> URL
    blocked: set[str] = set()  # request ids the browser refused (content security policy)

    async def call(method: str, **params):
        number = next(ids)
        connection.write_message(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(await connection.read_message())
            if message.get("method") == "Runtime.consoleAPICalled" and message["params"]["type"] == "error":
                arguments = message["params"]["args"]
                errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in arguments))
            if message.get("method") == "Network.requestWillBeSent":
                requests[message["params"]["requestId"]] = message["params"]["request"]["url"]
            if message.get("method") == "Network.loadingFailed" and message["params"].get("blockedReason"):
                blocked.add(message["params"]["requestId"])
            if message.get("id") == number:
                return message.get("result", {})

    async def evaluate(expression: str):
        result = await call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    await call("Runtime.enable")
    await call("Page.enable")
    await call("Network.enable")
    await call("Page.navigate", url=url)
    deadline, ready = time.monotonic() + timeout_s, False
    while time.monotonic() < deadline:
        ready = bool(await evaluate(ready_js))
        if ready:
            break
        await asyncio.sleep(1.0)
    await asyncio.sleep(settle_s)
    webgl = await evaluate("!!document.createElement('canvas').getContext('webgl2')")
    webgpu = await evaluate("!!navigator.gpu && !!(await navigator.gpu.requestAdapter())")
    shot = await call("Page.captureScreenshot", format="png")
    output.write_bytes(base64.b64decode(shot["data"]))
    page_text = await evaluate("document.body.innerText")
    connection.close()
    return {"ready": ready, "errors": errors, "webgl2": webgl, "webgpu": webgpu, "text": page_text,
            "sent": sorted({url for key, url in requests.items() if key not in blocked}),
            "blocked": sorted({url for key, url in requests.items() if key in blocked})}
