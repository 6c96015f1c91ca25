"""The project's errors: one `EofmError` family a user or a script can catch.

Each subclass also derives from the builtin its callers caught before the family existed
(``ValueError`` for QC, store-contract, tile and config errors, ``RuntimeError`` for fetch
and credential failures, ``OSError`` for the hub), so ``except ValueError`` keeps working.
The modules that raise them re-export their names (``eofm.data.qc.QCError`` …).
"""

from __future__ import annotations


class EofmError(Exception):
    """Base of every error eofm raises on purpose; the message names file, key and expectation."""


class ConfigError(EofmError, ValueError):
    """A config key is missing, misspelt or out of range; the message names the key."""


class FetchError(EofmError, RuntimeError):
    """A source could not be fetched; the message names source, URL (redacted) and period."""

    def __init__(self, source: str, url: str, period: str, reason: str) -> None:
        from eofm.data.fetch import redact  # fetch imports this module: import at call time

        self.source, self.url, self.period, self.reason = source, redact(url), period, reason
        super().__init__(f"{source}: cannot fetch {self.url} for {period}: {reason}")


class TransientError(EofmError, RuntimeError):
    """A failure worth retrying (server busy, connection dropped, body cut short)."""


class CredentialsError(EofmError, RuntimeError):
    """No usable credentials for a source; the message names what was looked for, and how."""


class TileError(EofmError, ValueError):
    """A tile input is unusable (missing band, no georeference, bad config)."""


TilesError = TileError


class PairSelectionError(EofmError, ValueError):
    """No usable WGAST (t1, t2) pair, or no split: names area, thresholds, best candidates."""


class QCError(EofmError, ValueError):
    """At least one store failed quality control."""


class StoreContractError(EofmError, ValueError):
    """A dataset does not follow the gridded-store contract of DESIGN.md."""


class EvaluationError(EofmError, ValueError):
    """Scores would be wrong (non-finite truth or forecast); the message names what and how many."""


class OutputError(EofmError, ValueError):
    """An output cannot be written as it is (a NaN or infinity in a JSON file, …)."""


class HubError(EofmError, OSError):
    """Model weights could not be obtained from the Hugging Face Hub or the local cache."""


class HubDownloadError(HubError):
    """A weights file could not be fetched from the Hub or found in the local cache."""


__all__ = [
    "ConfigError",
    "CredentialsError",
    "EofmError",
    "EvaluationError",
    "FetchError",
    "HubDownloadError",
    "HubError",
    "OutputError",
    "PairSelectionError",
    "QCError",
    "StoreContractError",
    "TileError",
    "TilesError",
    "TransientError",
]
