"""What the environment and the YAML file share as sources of settings: the error and URL check.

`ConfigError` names the setting at fault (an environment variable, or a path in the file such
as `providers.vllm.base_url`); `gateway.config` is where callers catch it from.
"""

from __future__ import annotations

import re


class ConfigError(Exception):
    """Configuration that the gateway cannot start with; `setting` names the culprit."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting


def check_url(setting: str, url: str) -> str:
    """`url` without its trailing slash, when it is an http:// or https:// URL."""
    if not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError(setting, "must be an http:// or https:// URL")
    return url.rstrip("/")
