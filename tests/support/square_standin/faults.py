"""Injected faults: timeouts, dropped connections and errors on the next payment or refund."""

from __future__ import annotations

import threading
from dataclasses import dataclass

FAULTS = (
    "delay",  # sleep, then process normally
    "timeout_no_charge",  # sleep, then close the connection without processing
    "500",  # HTTP 500 INTERNAL_SERVER_ERROR without processing
    "drop_after_charge",  # process fully, then close without sending a byte
    "delay_after_charge",  # stand-in extra: process fully, sleep, then answer
    "temporary_error",  # stand-in extra: 400 TEMPORARY_ERROR without processing (key unused)
)
FAULTABLE_OPERATIONS = ("CreatePayment", "RefundPayment")


@dataclass
class Fault:
    kind: str
    remaining: int
    delay: float
    operation: str | None


class FaultInjection:
    """``inject``/``clear_faults`` for tests; the server takes a fault per request."""

    _faults: list[Fault]
    _lock: threading.RLock

    def inject(
        self, fault: str, times: int = 1, delay: float = 0.0, *, operation: str | None = None
    ) -> None:
        """Apply ``fault`` to the next ``times`` CreatePayment/RefundPayment requests.

        ``operation`` ("CreatePayment" or "RefundPayment") narrows it to one of them. Faults
        queue: the first one with uses left applies.
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose from {FAULTS}")
        if operation not in (None, *FAULTABLE_OPERATIONS):
            raise ValueError(f"faults apply to {FAULTABLE_OPERATIONS}, not {operation!r}")
        if times < 1 or delay < 0:
            raise ValueError("times must be >= 1 and delay >= 0")
        with self._lock:
            self._faults.append(Fault(fault, times, delay, operation))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, operation: str | None) -> Fault | None:
        if operation not in FAULTABLE_OPERATIONS:
            return None
        with self._lock:
            for fault in self._faults:
                if fault.operation in (None, operation):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None
