"""A minimal JSON-RPC client over urllib, for chain management (no web3 import)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from fogctl.errors import OperationFailed, ServiceUnavailable

__all__ = ["RpcError", "rpc_call"]


class RpcError(OperationFailed):
    """The node answered a JSON-RPC call with an error object."""

    def __init__(self, method: str, error: Any) -> None:
        message = error.get("message", error) if isinstance(error, dict) else error
        super().__init__(f"{method}: {message}")
        self.error = error


def rpc_call(url: str, method: str, params: list[Any] | None = None, *, timeout: float = 10) -> Any:
    """Call ``method``; ServiceUnavailable if the endpoint can't be reached."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    req = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            answer = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise ServiceUnavailable(f"chain RPC {url}: HTTP {exc.code}") from None
    except (OSError, urllib.error.URLError) as exc:
        reason = getattr(exc, "reason", exc)
        text = getattr(reason, "strerror", None) or str(reason)
        raise ServiceUnavailable(
            f"chain RPC {url} is unreachable: {text}",
            hint="start one with 'fogctl stake chain up' or pass --rpc-url",
        ) from None
    except ValueError:
        raise ServiceUnavailable(f"chain RPC {url}: not a JSON-RPC endpoint") from None
    if not isinstance(answer, dict):
        raise ServiceUnavailable(f"chain RPC {url}: not a JSON-RPC endpoint")
    if answer.get("error") is not None:
        raise RpcError(method, answer["error"])
    return answer.get("result")
