"""Messages for the attempt's log (stored beside its outputs, capped by the host).
`print` goes there too."""

from ._host import wit


def _log(level, message):
    w = wit()
    w.log.log(getattr(w.log.Level, level), str(message))


def trace(message):
    _log("TRACE", message)


def debug(message):
    _log("DEBUG", message)


def info(message):
    _log("INFO", message)


def warn(message):
    _log("WARN", message)


def error(message):
    _log("ERROR", message)
