"""The access URL of the benchmark server: where it is read from, and how it is kept out of every output.

The URL is a credential. It is read from ``NERSEMBLE_BENCHMARK_URL``, else from
``~/.config/nersemble_benchmark/.env`` (the official toolkit's file), and never printed, logged or stored.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import ConfigError

URL_ENV_VAR = "NERSEMBLE_BENCHMARK_URL"
REDACTED = "<NERSEMBLE_BENCHMARK_URL>"


def env_file() -> Path:
    """The official toolkit's settings file."""
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config_home / "nersemble_benchmark" / ".env"


def _read_env_file(path: Path) -> str | None:
    if not path.is_file():
        return None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = re.match(rf"^\s*{URL_ENV_VAR}\s*=\s*(.*?)\s*$", line)
        if match:
            return match.group(1).strip().strip("'\"") or None
    return None


def resolve_url(override: str | None = None) -> str:
    """The base URL: ``override`` (``--url``), else the environment, else the official .env file."""
    if override:
        url, source = override, "given with --url"
    elif os.environ.get(URL_ENV_VAR):
        url, source = os.environ[URL_ENV_VAR], f"in {URL_ENV_VAR}"
    else:
        url, source = _read_env_file(env_file()), f"in {env_file()}"
    if not url:
        raise ConfigError(
            f"No access URL: set {URL_ENV_VAR} or add a line {URL_ENV_VAR} = \"<url>\" to {env_file()} "
            "(the URL comes with your NeRSemble access approval)."
        )
    if not re.match(r"^https?://", url):
        raise ConfigError(f"The access URL {source} does not start with http:// or https://; check it.")
    return url.rstrip("/")


def redact(text: str, url: str | None) -> str:
    """Replace every occurrence of the URL (and its host part) in ``text`` with a placeholder."""
    if not url:
        return text
    text = text.replace(url, REDACTED)
    host = re.sub(r"^https?://", "", url).split("/", 1)[0]
    secret_path = url.split(host, 1)[1].strip("/") if host in url else ""
    hostname = host.rsplit(":", 1)[0]  # libraries also log the host without its port
    for secret in (secret_path, host, hostname):
        if len(secret) >= 6:
            text = text.replace(secret, REDACTED)
    return text
