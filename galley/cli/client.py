"""HTTP client for the Galley server's ARM REST API.

The client knows the wire rules every command shares: the base URL, the
`api-version` query parameter, the bearer header, ARM error bodies, paging
through `nextLink`, and waiting for long-running operations
(`Azure-AsyncOperation`, `Location`, or the resource's own provisioningState).
It knows nothing about particular resource types.
"""

import ssl
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Optional

import httpx

# api-versions the CLI sends, one per resource provider family.
API_GALLERY = "2026-03-03"  # galleries, image definitions, image versions
API_IMAGE = "2026-04-01"  # managed images (Microsoft.Compute/images)
API_DISK = "2026-03-02"  # disks and snapshots
API_GROUP = "2024-11-01"  # resource groups
API_STORAGE = "2023-05-01"  # storage accounts (Microsoft.Storage/storageAccounts)
API_VM = "2026-04-01"  # virtual machines, VM sizes and usages (Microsoft.Compute)

# Disk content moves in requests that may take long: the server spools an upload before
# storing it, and builds a dynamic VHD or qcow2 before it answers a download.
DATA_TIMEOUT = httpx.Timeout(60.0, read=3600.0, write=3600.0)

DEFAULT_URL = "https://127.0.0.1:8070"
DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"

TERMINAL_STATES = {"succeeded", "failed", "canceled"}
DEFAULT_POLL_SECONDS = 1.0


class ArmError(Exception):
    """An error to show the user as `ERROR: (Code) message`."""

    def __init__(
        self,
        code: str,
        message: str,
        target: Optional[str] = None,
        details: Optional[list] = None,
        status: Optional[int] = None,
    ):
        super().__init__(f"({code}) {message}")
        self.code = code
        self.message = message
        self.target = target
        self.details = details or []
        self.status = status

    @classmethod
    def from_body(cls, error: Any, status: Optional[int] = None) -> "ArmError":
        """Build from the `error` object of an ARM error or failed operation."""
        if not isinstance(error, dict):
            return cls("UnknownError", str(error), status=status)
        return cls(
            code=str(error.get("code") or "UnknownError"),
            message=str(error.get("message") or ""),
            target=error.get("target"),
            details=error.get("details") if isinstance(error.get("details"), list) else None,
            status=status,
        )

    def lines(self) -> list[str]:
        """The text to print on stderr, one entry per line."""
        out = [f"ERROR: ({self.code}) {self.message}".rstrip()]
        if self.target:
            out.append(f"Target: {self.target}")
        for detail in self.details:
            if isinstance(detail, dict):
                text = f"  ({detail.get('code', '')}) {detail.get('message', '')}"
                if detail.get("target"):
                    text += f" [target: {detail['target']}]"
                out.append(text.rstrip())
        return out


def retry_after(response: httpx.Response) -> float:
    """Seconds to wait before polling again: the Retry-After header, else 1."""
    value = response.headers.get("Retry-After")
    if value is None:
        return DEFAULT_POLL_SECONDS
    try:
        seconds = float(value)
    except ValueError:  # an HTTP date; not worth parsing for a local server
        return DEFAULT_POLL_SECONDS
    return max(seconds, 0.0)


def provisioning_state(resource: Any) -> Optional[str]:
    if isinstance(resource, dict) and isinstance(resource.get("properties"), dict):
        return resource["properties"].get("provisioningState")
    return None


class ArmClient:
    """Speaks ARM to one server. Paths are relative to the server's base URL."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        transport: Optional[httpx.BaseTransport] = None,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 60.0,
        auth: Optional[httpx.Auth] = None,
        verify: "ssl.SSLContext | bool" = True,
    ):
        self.base_url = base_url.rstrip("/")
        self.sleep = sleep
        self.http = httpx.Client(
            base_url=self.base_url,
            headers={"Accept": "application/json"},
            transport=transport,
            timeout=timeout,
            auth=auth,
            verify=verify,
        )

    def close(self) -> None:
        self.http.close()

    # -- one request -------------------------------------------------------

    def send(
        self,
        method: str,
        url: str,
        api_version: Optional[str] = None,
        *,
        params: Optional[dict] = None,
        body: Any = None,
        allow: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send one request; raise ArmError for transport errors and for
        non-2xx answers whose status is not in `allow`."""
        target = self.url(url, api_version, params)
        with self._transport_errors():
            response = self.http.request(method, target, json=body)
        if response.is_success or response.status_code in allow:
            return response
        error = error_from_response(response)
        if response.status_code == 401 and self.http.auth is None:
            error.message += (" Not signed in: run 'galley login --service-principal ...', or run the CLI "
                              "where the server's $GALLEY_HOME/credentials.json is readable.")
        raise error

    def url(self, url: str, api_version: Optional[str] = None, params: Optional[dict] = None) -> httpx.URL:
        """`url` with api-version (unless it has one already) and `params` added to its query."""
        query = dict(params or {})
        if api_version and "api-version=" not in url:
            query["api-version"] = api_version
        target = httpx.URL(url)
        if query:  # merge, keeping any query the URL already has (nextLink)
            target = target.copy_merge_params(query)
        return target

    @contextmanager
    def _transport_errors(self) -> Iterator[None]:
        """Turn httpx's transport errors into ArmErrors the user can act on."""
        try:
            yield
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise ArmError(
                    "CertificateNotTrusted",
                    f"the certificate of {self.base_url} is not trusted ({exc}). Give the server's CA "
                    "($GALLEY_HOME/tls/ca.pem on its machine) with 'galley login --ca-bundle' or GALLEY_CA_BUNDLE.",
                ) from None
            raise ArmError(
                "ConnectionError",
                f"cannot connect to the Galley server at {self.base_url} ({exc}). "
                "Is it running? Start one with `galley serve`, or point the CLI "
                "elsewhere with --server or GALLEY_URL.",
            ) from None
        except httpx.TimeoutException:
            raise ArmError(
                "Timeout", f"the Galley server at {self.base_url} did not answer in time."
            ) from None
        except httpx.HTTPError as exc:
            raise ArmError("ConnectionError", f"{type(exc).__name__}: {exc}") from None

    # -- disk content ----------------------------------------------------------

    def send_content(
        self,
        method: str,
        url: str,
        api_version: Optional[str],
        content: Iterable[bytes],
        length: int,
        *,
        params: Optional[dict] = None,
    ) -> httpx.Response:
        """Send `length` bytes produced by `content` (an iterator, so that a file of any size
        goes out in bounded memory) as the request body; raise ArmError unless 2xx."""
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length)}
        target = self.url(url, api_version, params)
        with self._transport_errors():
            response = self.http.request(method, target, content=content, headers=headers,
                                         timeout=DATA_TIMEOUT)
        if response.is_success:
            return response
        raise error_from_response(response)

    @contextmanager
    def receive_content(
        self, url: str, api_version: Optional[str] = None, *, params: Optional[dict] = None,
    ) -> Iterator[httpx.Response]:
        """GET `url` as a stream: the response, whose body is read with iter_bytes().
        A non-2xx answer raises ArmError (with the server's error body)."""
        target = self.url(url, api_version, params)
        with self._transport_errors():
            with self.http.stream("GET", target, headers={"Accept": "*/*"}, timeout=DATA_TIMEOUT) as response:
                if not response.is_success:
                    response.read()
                    raise error_from_response(response)
                yield response

    # -- resource operations --------------------------------------------------

    def get(self, path: str, api_version: str, params: Optional[dict] = None) -> Any:
        return json_body(self.send("GET", path, api_version, params=params))

    def exists(self, path: str, api_version: str) -> bool:
        response = self.send("GET", path, api_version, allow=(404,))
        return response.status_code != 404

    def list(self, path: str, api_version: str, params: Optional[dict] = None) -> list:
        """All items of a collection, following `nextLink` across pages."""
        items: list = []
        seen: set[str] = set()
        page = json_body(self.send("GET", path, api_version, params=params)) or {}
        while True:
            items.extend(page.get("value") or [])
            next_link = page.get("nextLink")
            if not next_link:
                return items
            if next_link in seen:
                raise ArmError("InvalidResponse", f"the server repeated nextLink {next_link}")
            seen.add(next_link)
            # nextLink is absolute and normally carries api-version already.
            page = json_body(self.send("GET", next_link, api_version)) or {}

    def put(self, path: str, api_version: str, body: Any, *, no_wait: bool = False) -> Any:
        response = self.send("PUT", path, api_version, body=body)
        return self._finish_write(response, path, api_version, no_wait)

    def patch(self, path: str, api_version: str, body: Any, *, no_wait: bool = False) -> Any:
        response = self.send("PATCH", path, api_version, body=body)
        return self._finish_write(response, path, api_version, no_wait)

    def post(self, path: str, api_version: str, *, params: Optional[dict] = None, body: Any = None,
             no_wait: bool = False) -> Any:
        """POST an action. Returns the answer's body at once with no_wait; else waits for the
        operation the answer names (if any) and returns None."""
        response = self.send("POST", path, api_version, params=params, body=body)
        if no_wait or not self._wait(response):
            return json_body(response)
        return None

    def post_for_result(self, path: str, api_version: str, *, body: Any = None) -> Any:
        """POST an action whose result is read at the end of its operation (ARM's final-state-via
        location, as a run-command's output is): waits, then returns what the Location URL answers."""
        response = self.send("POST", path, api_version, body=body)
        location = response.headers.get("Location")
        if not self._wait(response) or not location:
            return json_body(response)
        return json_body(self.send("GET", location))

    def delete(self, path: str, api_version: str, *, no_wait: bool = False) -> Any:
        """Delete and (unless no_wait) wait. Returns the initial body with
        no_wait, else None. A resource already gone (204/404 on poll) is fine."""
        response = self.send("DELETE", path, api_version)
        if no_wait:
            return json_body(response)
        self._wait(response)
        return None

    # -- long-running operations ---------------------------------------------

    def _finish_write(self, response: httpx.Response, path: str, api_version: str, no_wait: bool) -> Any:
        body = json_body(response)
        if no_wait:
            return body
        if self._wait(response):
            return self.get(path, api_version)
        # No operation to follow: the resource itself tells when it is done.
        state = provisioning_state(body)
        if body is None or (state is not None and state.lower() not in TERMINAL_STATES):
            body = self._wait_for_resource(path, api_version)
        check_provisioning(body)
        return body

    def _wait(self, response: httpx.Response) -> bool:
        """Follow the response's operation header if it has one.
        Returns True when there was an operation to follow."""
        operation_url = response.headers.get("Azure-AsyncOperation")
        if operation_url:
            self._poll_operation(operation_url, retry_after(response))
            return True
        location = response.headers.get("Location")
        if response.status_code == 202 and location:
            self._poll_location(location, retry_after(response))
            return True
        return False

    def _poll_operation(self, url: str, delay: float) -> dict:
        """Poll an Azure-AsyncOperation URL until its status is terminal."""
        while True:
            self.sleep(delay)
            response = self.send("GET", url)
            operation = json_body(response) or {}
            status = str(operation.get("status", "")).lower()
            if status == "succeeded":
                return operation
            if status == "failed":
                raise ArmError.from_body(
                    operation.get("error") or {"code": "OperationFailed", "message": "the operation failed."}
                )
            if status == "canceled":
                raise ArmError.from_body(
                    operation.get("error") or {"code": "OperationCanceled", "message": "the operation was canceled."}
                )
            delay = retry_after(response)

    def _poll_location(self, url: str, delay: float) -> None:
        """Poll a Location URL until it stops answering 202 Accepted."""
        while True:
            self.sleep(delay)
            response = self.send("GET", url, allow=(404,))
            if response.status_code != 202:
                return
            delay = retry_after(response)

    def _wait_for_resource(self, path: str, api_version: str) -> Any:
        """GET the resource until its provisioningState is terminal."""
        while True:
            response = self.send("GET", path, api_version)
            resource = json_body(response)
            state = provisioning_state(resource)
            if state is None or state.lower() in TERMINAL_STATES:
                return resource
            self.sleep(retry_after(response))


def check_provisioning(resource: Any) -> None:
    state = provisioning_state(resource)
    if state and state.lower() in ("failed", "canceled"):
        name = resource.get("id") or resource.get("name") or "the resource"
        raise ArmError("Provisioning" + state.capitalize(), f"provisioning of {name} ended in state {state}.")


def json_body(response: httpx.Response) -> Any:
    """The response's JSON, or None when it has no body."""
    if not response.content or not response.content.strip():
        return None
    try:
        return response.json()
    except ValueError:
        raise ArmError(
            "InvalidResponse",
            f"the server answered {response.request.method} {response.request.url} with non-JSON content "
            f"(HTTP {response.status_code}): {response.text[:200]}",
        ) from None


def error_from_response(response: httpx.Response) -> ArmError:
    """Turn a non-2xx response into an ArmError, ARM body or not."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return ArmError.from_body(body["error"], status=response.status_code)
    reason = response.reason_phrase or f"HTTP {response.status_code}"
    text = response.text.strip()[:300]
    message = f"the server answered {response.status_code} {reason}" + (f": {text}" if text else ".")
    return ArmError(reason.replace(" ", ""), message, status=response.status_code)
