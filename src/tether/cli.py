"""The ``tether`` command line: ``serve`` (the hub), ``connect`` and ``demo``.

One ``_add_<command>_parser`` and one ``cmd_<command>(args) -> int`` per subcommand, so each
can be filled in without touching the others. ``main(argv)`` returns the exit status instead of
exiting, which keeps it testable in-process. The hub is imported lazily: ``tether --help`` and
the client commands work without the ``hub`` extra.

``serve`` writes exactly one line to standard output (``listening on http://HOST:PORT``), so
scripts and tests can wait for it; ``connect`` and ``demo`` print their timeline there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tether.hub import HubConfig

__all__ = ["build_parser", "cmd_connect", "cmd_demo", "cmd_serve", "main"]

#: Read when ``--token`` is not given, so the token need not appear in ``ps`` output.
TOKEN_ENV = "TETHER_HUB_TOKEN"

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")

BACKENDS = ("asyncio", "trio")
TRIO_INSTALL = "pip install 'tether[trio]'"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tether`` console script; returns the process exit status.

    ``argv`` defaults to ``sys.argv[1:]``. Argument errors exit with status 2 (argparse),
    as do ``--help`` and ``--version`` with status 0.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    status: int = args.func(args)
    return status


def build_parser() -> argparse.ArgumentParser:
    """The ``tether`` argument parser with its three subcommands."""
    from tether import __version__

    parser = argparse.ArgumentParser(
        prog="tether", description="Socket.IO realtime client with channels, and its hub."
    )
    parser.add_argument("--version", action="version", version=f"tether {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_serve_parser(sub)
    _add_connect_parser(sub)
    _add_demo_parser(sub)
    return parser


# ----------------------------------------------------------------------------------- serve


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def _int_at_least(minimum: int) -> Callable[[str], int]:
    return _int_in(minimum, None)


def _int_in(minimum: int, maximum: int | None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, not {value}")
        return value

    return parse


def _port(text: str) -> int:
    value = _int_at_least(0)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be at most 65535, not {value}")
    return value


def _add_serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the hub (channels, profiles, members; multi-process with --redis)",
        description="Run tether's hub. Prints 'listening on http://HOST:PORT' once it accepts "
        "connections; stops cleanly on SIGINT/SIGTERM.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port", type=_port, default=8765, help="port; 0 picks a free one (default 8765)"
    )
    p.add_argument("--redis", metavar="URL", help="share channels with other hubs via Redis")
    p.add_argument(
        "--redis-prefix",
        default="tether:",
        metavar="PREFIX",
        help="prefix of every Redis key and channel (default 'tether:')",
    )
    p.add_argument(
        "--node-ttl",
        type=_positive_float,
        default=15.0,
        metavar="S",
        help="with --redis: seconds after which a silent hub process is presumed dead and "
        "its members are removed (default 15)",
    )
    p.add_argument(
        "--token",
        help=f"require auth {{'token': T}} on connect (default: ${TOKEN_ENV} if set)",
    )
    p.add_argument(
        "--ping-interval",
        type=_positive_float,
        default=25.0,
        metavar="S",
        help="seconds between the hub's Engine.IO pings (default 25)",
    )
    p.add_argument(
        "--ping-timeout",
        type=_positive_float,
        default=20.0,
        metavar="S",
        help="seconds a client has to answer a ping before the hub drops it (default 20)",
    )
    p.add_argument(
        "--max-channel-name",
        type=_int_at_least(1),
        default=128,
        metavar="N",
        help="longest channel name accepted, in characters (default 128)",
    )
    p.add_argument(
        "--max-payload",
        type=_int_at_least(1024),
        default=1_000_000,
        metavar="BYTES",
        help="largest message / engine.io packet accepted (default 1000000)",
    )
    p.add_argument(
        "--max-channels-per-client",
        type=_int_at_least(1),
        default=1000,
        metavar="N",
        help="channels one client may be in at once; more joins are refused (default 1000)",
    )
    p.add_argument(
        "--max-send-queue",
        type=_int_at_least(100),
        default=10_000,
        metavar="N",
        help="packets waiting for a client before it is disconnected as not reading "
        "(default 10000)",
    )
    p.add_argument(
        "--max-send-queue-bytes",
        type=_int_at_least(1),
        default=None,
        metavar="BYTES",
        help="bytes waiting for a client before it is disconnected as not reading "
        "(default 4 x --max-payload)",
    )
    p.add_argument(
        "--history",
        type=_int_in(0, 100_000),
        default=1000,
        metavar="N",
        help="messages kept per channel (and for the broadcasts) to replay to members that "
        "come back, and to recognise retries; 0 turns continuity off (default 1000)",
    )
    p.add_argument(
        "--history-ttl",
        type=_positive_float,
        default=120.0,
        metavar="S",
        help="seconds a message stays in the history (default 120)",
    )
    p.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="warning",
        help="what the hub logs to standard error (default warning)",
    )
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """``tether serve``: run the hub in the foreground until SIGINT/SIGTERM."""
    try:
        from tether.hub import HubConfig
    except ImportError as exc:
        print(
            f"tether serve needs the hub extra: pip install 'tether[hub]' ({exc})",
            file=sys.stderr,
        )
        return 1
    _configure_logging(args.log_level)
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV) or None
    try:
        config = HubConfig(
            host=args.host,
            port=args.port,
            redis_url=args.redis,
            token=token,
            ping_interval=args.ping_interval,
            ping_timeout=args.ping_timeout,
            max_channel_name=args.max_channel_name,
            max_payload=args.max_payload,
            redis_prefix=args.redis_prefix,
            node_ttl=args.node_ttl,
            max_channels_per_client=args.max_channels_per_client,
            max_send_queue=args.max_send_queue,
            max_send_queue_bytes=args.max_send_queue_bytes,
            history=args.history,
            history_ttl=args.history_ttl,
        )
    except ValueError as exc:
        print(f"tether serve: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_serve(config))


async def _serve(config: HubConfig) -> int:
    from tether.hub import Hub

    hub = Hub(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
    try:
        try:
            await hub.start()
        except OSError as exc:
            print(
                f"tether serve: cannot listen on {config.host}:{config.port}: {exc}",
                file=sys.stderr,
            )
            return 1
        except Exception as exc:
            where = f" (redis {config.redis_url_redacted})" if config.redis_url else ""
            print(
                f"tether serve: could not start{where}: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            return 1
        print(f"listening on {hub.url}", flush=True)
        waiter = asyncio.ensure_future(stop.wait())
        stopped = asyncio.ensure_future(hub.wait_stopped())
        await asyncio.wait({waiter, stopped}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stopped.cancel()
        await hub.stop()
        return 0
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _configure_logging(level: str) -> None:
    """Log to standard error: standard output carries only the ``listening on`` line."""
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    numeric = getattr(logging, level.upper())
    logging.getLogger("tether").setLevel(numeric)
    logging.getLogger("uvicorn").setLevel(numeric)


# --------------------------------------------------------------------------------- connect


def _add_connect_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "connect",
        help="interactive client: prints events, sends what you type",
        description="Connect, print lifecycle events and messages as they happen (with "
        "timestamps) and send what you type: send CH EVENT JSON, broadcast EVENT JSON, "
        "emit EVENT JSON, join CH, leave CH, profile JSON, members CH, close, open, quit. "
        "Without a URL an embedded hub is started (needs the hub extra).",
    )
    p.add_argument("url", nargs="?", help="hub or Socket.IO server URL (default: embedded hub)")
    p.add_argument("--join", action="append", default=[], metavar="CH", help="join a channel")
    p.add_argument(
        "--auth", metavar="JSON", help='auth object sent on connect, e.g. \'{"token": "T"}\''
    )
    _add_backend_argument(p)
    p.set_defaults(func=cmd_connect)


def _add_backend_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="asyncio",
        help=f"event loop the client runs on (default asyncio; trio needs {TRIO_INSTALL})",
    )


def _backend_missing(command: str, backend: str) -> bool:
    """Say in one line how to install ``backend`` when it cannot be imported."""
    if backend != "trio":
        return False
    try:
        import trio  # noqa: F401
    except ImportError:
        print(f"tether {command}: --backend trio needs trio: {TRIO_INSTALL}", file=sys.stderr)
        return True
    return False


def cmd_connect(args: argparse.Namespace) -> int:
    """``tether connect``: the interactive client.

    Exits 0 after ``quit`` or the end of standard input, 130 after Ctrl-C (143 after
    SIGTERM), 2 for bad arguments.
    """
    from tether._console import run_connect

    if _backend_missing("connect", args.backend):
        return 1

    auth = None
    if args.auth is not None:
        try:
            auth = json.loads(args.auth)
        except ValueError:
            print("tether connect: --auth must be a JSON object", file=sys.stderr)
            return 2
        if not isinstance(auth, dict):
            print("tether connect: --auth must be a JSON object", file=sys.stderr)
            return 2
    try:
        return run_connect(args.url, list(args.join), auth, args.backend)
    except ValueError as exc:  # the URL or an option, refused by RealtimeClient
        print(f"tether connect: {exc}", file=sys.stderr)
        return 2


# ------------------------------------------------------------------------------------ demo


def _add_demo_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="show the whole lifecycle against an embedded hub",
        description="Two clients on an embedded hub and real sockets: they join a channel "
        "and talk; one client's network is cut, it reconnects, re-joins and its offline "
        "messages arrive in order; then a close() that stays closed. Exits 1 if anything it "
        "announces did not happen.",
    )
    _add_backend_argument(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """``tether demo``: the self-checking lifecycle walk-through (exit 1 if a check fails)."""
    from tether._console import run_demo

    if _backend_missing("demo", args.backend):
        return 1
    return run_demo(args.backend)
