"""The octim command: run the engine (serve, demo) and look after its data."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from octim._version import __version__
from octim.config import Settings, load_settings
from octim.engine import Engine, Listening
from octim.errors import ConfigError, OctimError

log = logging.getLogger("octim.cli")

EXIT_CONFIG = 2
EXIT_FAILURE = 1
SERVE_EPILOG = """required settings (environment, or the --config file):
  OCTIM_SECRET    the platform's JWT signing secret (HS256, at least 32 bytes)
  OCTIM_API_KEY   the platform's API key for the HTTP API (at least 32 characters)
  OCTIM_DATA      the data directory, unless --data is given

Every other setting is OCTIM_<NAME> too (OCTIM_HTTP, OCTIM_LOG_FORMAT, OCTIM_PEAK_PREWARM…):
the full table with defaults is in docs/operations.md. Flags win over the environment,
the environment over the file; every invalid setting is reported at once (exit code 2).
"""
DEMO_EPILOG = """No setting is required: the demo generates its secret and API key, seeds shops,
agents, buyers, tickets, a campaign and a WeChat channel, and prints the links to open.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="octim", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def server_flags(p: argparse.ArgumentParser, data_required: bool) -> None:
        p.add_argument("--data", type=Path, required=False,
                       help="data directory (LMDB environment)" +
                       ("" if data_required else "; default ./octim-demo-data"))
        p.add_argument("--http", help="HTTP API address host:port (default 127.0.0.1:8080)")
        p.add_argument("--ws", help="WebSocket gateway address host:port (default 127.0.0.1:8081)")
        p.add_argument("--config", type=Path, help="TOML configuration file")
        p.add_argument("--log-format", choices=["json", "text"], help="log line format")
        p.add_argument("--tls-cert", help="PEM certificate chain: serve HTTPS and WSS")
        p.add_argument("--tls-key", help="PEM private key of --tls-cert")

    serve = commands.add_parser("serve", help="run the engine", epilog=SERVE_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    server_flags(serve, data_required=True)
    demo = commands.add_parser("demo", help="run the engine with a seeded demo platform",
                               epilog=DEMO_EPILOG,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    server_flags(demo, data_required=False)
    backup = commands.add_parser("backup", help="hot copy of the store while the engine runs")
    backup.add_argument("--data", type=Path, required=True, help="data directory to copy")
    backup.add_argument("dest", type=Path, help="destination directory (new or empty)")
    commands.add_parser("version", help="print the version")
    kb = commands.add_parser("kb", help="knowledge base: import, export, ask")
    kb_commands = kb.add_subparsers(dest="kb_command", required=True, metavar="KB_COMMAND")
    rekey = commands.add_parser(
        "rekey", help="seal every value and upload under the current data key (resumable)")
    rekey.add_argument("--data", type=Path, required=True, help="data directory")
    rekey.add_argument("--key-file", help="the data keys (else OCTIM_DATA_KEY / _FILE)")
    rekey.add_argument("--compact", action="store_true",
                       help="then rewrite the file without free pages that may still hold old "
                            "plaintext or ciphertext (the engine must be stopped)")
    wechat = commands.add_parser(
        "wechat", help="run the WeChat Official Account adapter (docs/channels.md)")
    wechat.add_argument("--listen", default="127.0.0.1:8090",
                        help="address for WeChat's pushes and OctIM's deliveries")
    wechat.add_argument("--octim", default="http://127.0.0.1:8080", help="OctIM's HTTP URL")
    wechat.add_argument("--channel", required=True, help="the OctIM api channel's id")
    wechat.add_argument("--api-base", default="https://api.weixin.qq.com",
                        help="WeChat's API (a fake's URL for a trial run)")
    reports = commands.add_parser("reports", help="reports: rebuild the counters")
    report_commands = reports.add_subparsers(dest="reports_command", required=True,
                                             metavar="REPORTS_COMMAND")
    rebuild = report_commands.add_parser(
        "rebuild", help="replay the event log into fresh report counters (engine stopped)")
    rebuild.add_argument("--data", type=Path, required=True, help="data directory")
    kb_import = kb_commands.add_parser("import", help="upsert entries from a JSON Lines file")
    kb_import.add_argument("file", type=Path)
    kb_import.add_argument("--data", type=Path, required=True)
    kb_import.add_argument("--skip-bad", action="store_true",
                           help="import the good lines even if some are bad")
    kb_export = kb_commands.add_parser("export", help="write every entry as JSON Lines")
    kb_export.add_argument("--data", type=Path, required=True)
    kb_ask = kb_commands.add_parser("ask", help="answer a question (or one per stdin line)")
    kb_ask.add_argument("--data", type=Path, required=True)
    kb_ask.add_argument("--shop", help="answer as this shop (its entries, then platform ones)")
    kb_ask.add_argument("question", nargs="?", help="omit to read questions from stdin")
    return parser


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    return {"data": args.data, "http": args.http, "ws": args.ws,
            "log_format": args.log_format, "tls_cert": args.tls_cert, "tls_key": args.tls_key}


def _rekey(data: Path, key_file: str | None, compact: bool) -> int:
    from octim.store.crypto import load_keys
    from octim.store.rekey import rekey

    keys = load_keys("" if key_file else os.environ.get("OCTIM_DATA_KEY", ""),
                     key_file or os.environ.get("OCTIM_DATA_KEY_FILE", ""))
    if not keys:
        raise ConfigError("data_key (OCTIM_DATA_KEY)", "rekey needs the data keys")
    report = rekey(data, keys, compact=compact)
    print(json.dumps({"kid": report.kid, "values": report.values, "blobs": report.blobs,
                      "compacted": report.compacted}))
    return 0


OnReady = Callable[[Engine, Listening], Awaitable[None]]


async def run_until_signalled(engine: Engine, on_ready: OnReady | None = None) -> None:
    """Run ``engine`` until SIGINT or SIGTERM, then shut it down cleanly."""
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            listening: Listening = await nursery.start(engine.run)
            if on_ready is not None:
                await on_ready(engine, listening)
            async for signum in signals:
                log.info("signal received", extra={"signal": signal.Signals(signum).name})
                engine.stop()
                break


def _raise_open_files() -> None:
    """Each WebSocket connection holds a file descriptor: lift the soft limit to the hard
    one (the operator sets the hard one; docs/operations.md)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    log.info("open files limit", extra={"limit": hard})


def _serve(settings: Settings, on_ready: OnReady | None = None) -> int:
    from octim.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    _raise_open_files()
    try:
        trio.run(run_until_signalled, Engine(settings), on_ready)
    except Exception as exc:
        leaf = _first_leaf(exc)
        if isinstance(leaf, OctimError):
            print(f"octim: {leaf}", file=sys.stderr)
        elif isinstance(leaf, OSError):  # most often: address already in use
            print(f"octim: cannot start: {leaf}", file=sys.stderr)
        else:
            raise
        return EXIT_FAILURE
    return 0


def _first_leaf(exc: BaseException) -> BaseException:
    """The first leaf exception of a (possibly nested) exception group."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _backup(data: Path, dest: Path) -> int:
    from octim.store import Environment

    if dest.exists() and any(dest.iterdir()):
        print(f"octim: backup destination {dest} is not empty", file=sys.stderr)
        return EXIT_FAILURE
    env = Environment(data, readonly=True)
    try:
        env.copy_to(dest)
    finally:
        env.close()
    print(f"backed up {data} to {dest}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "version":
            print(f"octim {__version__}")
            return 0
        if args.command == "backup":
            return _backup(args.data, args.dest)
        if args.command == "rekey":
            return _rekey(args.data, args.key_file, args.compact)
        if args.command == "wechat":
            from octim.channels import wechat as adapter
            from octim.config import parse_host_port

            config = adapter.config_from_env(args.octim, args.channel, args.api_base,
                                             dict(os.environ))
            bind = parse_host_port("--listen", args.listen)

            async def run_adapter() -> None:  # until SIGINT or SIGTERM
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async with trio.open_nursery() as nursery:
                        bound = await nursery.start(adapter.serve, config, bind)
                        print(json.dumps({"wechat_adapter": f"http://{bound}",
                                          "push_url": f"http://{bound}/wechat",
                                          "outbound_url": f"http://{bound}/outbound"}),
                              flush=True)
                        async for _ in signals:
                            nursery.cancel_scope.cancel()
                            break

            trio.run(run_adapter)
            return 0
        if args.command == "reports":
            from octim.domain.reports.feeder import rebuild
            from octim.store.crypto import load_keys

            keys = load_keys(os.environ.get("OCTIM_DATA_KEY", ""),
                             os.environ.get("OCTIM_DATA_KEY_FILE", ""))
            print(json.dumps(trio.run(rebuild, args.data, keys or None)))
            return 0
        if args.command == "kb":
            from octim import kb_cli

            if args.kb_command == "import":
                return kb_cli.import_file(args.file, args.data, skip_bad=args.skip_bad,
                                          out=sys.stdout)
            if args.kb_command == "export":
                return kb_cli.export(args.data, sys.stdout)
            questions = [args.question] if args.question is not None else sys.stdin
            return kb_cli.ask(args.data, args.shop, questions, sys.stdout)
        if args.command == "demo":
            from octim.demo import demo_links, demo_settings, seed_demo, seed_wechat

            settings = demo_settings(args.config, _flags(args))

            async def seeded(engine: Engine, listening: Listening) -> None:
                conversation = await seed_demo(engine)
                wechat = await seed_wechat(engine, listening, conversation)
                print(demo_links(settings, listening, conversation, wechat), flush=True)

            return _serve(settings, seeded)
        settings = load_settings(config_file=args.config, flags=_flags(args))
        return _serve(settings)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"octim: configuration error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except OctimError as exc:
        print(f"octim: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
