"""eofm: Earth-observation and weather foundation models, fine-tuned reproducibly."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("eofm")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
