"""How much load a drill sends, and its bounds. Every loop is bounded in rate, count and time."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlparse

from peakready.errors import PeakreadyError
from peakready.load.rawhttp import LOOPBACK_HOSTS
from peakready.load.shape import PeakProfile

#: Words the search users look for: nouns and colours the seed catalogue's products are
#: named from (``peakready.app.db.seed_name``), so that every search finds products.
SEARCH_TERMS = ("Widget", "green", "Lamp", "Kettle", "blue")


@dataclass(frozen=True)
class LoadSettings:
    """A steady mix of orders, product reads and searches at a fixed total rate.

    The default, 40 requests/s in all, leaves the lab's 2 cores free to fail over.
    """

    endpoint: str
    orders_per_s: float = 10.0
    reads_per_s: float = 24.0
    searches_per_s: float = 6.0
    duration_s: float = 300.0  # hard stop, whatever the control does
    max_orders: int = 20000  # hard stop on orders placed
    request_timeout_s: float = 4.0  # per attempt
    retry_window_s: float = 45.0  # retry one order (same key) for at most this long
    users_per_kind: int = 4
    startup_timeout_s: float = 30.0  # wait this long for the catalogue at start
    max_quantity: int = 2
    #: A peak profile (``PeakProfile.as_dict()``): open-model arrivals instead of the
    #: steady rates above.
    profile: dict[str, Any] | None = None
    #: Products a flash sale's orders go to (default: the catalogue's first).
    hot_products: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        url = urlparse(self.endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise PeakreadyError(f"load endpoint {self.endpoint!r}: expected an http(s) URL")
        for name in ("orders_per_s", "reads_per_s", "searches_per_s"):
            value = getattr(self, name)
            if not 0 <= value <= 500:
                raise PeakreadyError(f"load {name} {value}: expected 0 to 500 requests/s")
        if not 0 < self.duration_s <= 3600:
            raise PeakreadyError(f"load duration_s {self.duration_s}: expected 1 to 3600 s")
        if self.profile is not None:
            # Validates it (bounded in rate and time) and bounds the run by it.
            duration = PeakProfile.from_dict(self.profile).duration_s
            if self.duration_s < duration:
                raise PeakreadyError(
                    f"load duration_s {self.duration_s:g}: shorter than the profile's "
                    f"{duration:g} s"
                )
        if self.max_orders < 0 or self.users_per_kind < 1:
            raise PeakreadyError("load max_orders/users_per_kind: expected non-negative/positive")

    @property
    def total_per_s(self) -> float:
        return self.orders_per_s + self.reads_per_s + self.searches_per_s

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["hot_products"] = list(self.hot_products)
        return data


def loopback_only(endpoint: str, target: str) -> None:
    """On the lab, load goes to 127.0.0.1 and nowhere else."""
    host = urlparse(endpoint).hostname or ""
    if target == "lab" and host not in LOOPBACK_HOSTS:
        raise PeakreadyError(f"lab endpoint {endpoint!r}: expected http://127.0.0.1:<port>")
