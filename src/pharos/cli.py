"""The `pharos` command: `serve` and `config`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pharos import __version__
from pharos.config import ConfigError, load_config, render_default_config

log = logging.getLogger("pharos")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pharos", description="Pharos, a lightweight RESTful DICOM server."
    )
    parser.add_argument("--version", action="version", version=f"pharos {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="PATH",
        help="Orthanc-style JSON configuration file or folder of them (repeatable)",
    )
    serve.add_argument("--verbose", action="store_true", help="log at INFO level")
    serve.add_argument("--host", default=None, help="listen address (default: all interfaces)")

    commands.add_parser("config", help="print the default configuration")

    args = parser.parse_args(argv)
    if args.command == "config":
        sys.stdout.write(render_default_config())
        return 0
    return _serve(args.config, args.verbose, args.host)


def _serve(paths: list[str], verbose: bool, host: str | None) -> int:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(paths)
    except ConfigError as exc:
        print(f"pharos: configuration error: {exc}", file=sys.stderr)
        return 2
    for warning in config.warnings:
        log.warning("configuration: %s", warning)

    import uvicorn

    from pharos.context import ServerContext

    context = ServerContext(config)
    app = context.create_app()
    port = config.get_int("HttpPort")
    print(
        f"Pharos {__version__} ({context.system.name}) on http://{host or '0.0.0.0'}:{port}/ "
        f"- index: {context.index.describe()} - storage: {context.storage.describe()}",
        file=sys.stderr,
        flush=True,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host or "0.0.0.0",
            port=port,
            log_level="info" if verbose else "warning",
            access_log=verbose,
            timeout_keep_alive=30 if config.get_bool("KeepAlive") else 0,
            server_header=False,
            # Orthanc trusts no X-Forwarded-* header; neither does Pharos (RemoteIP metadata).
            proxy_headers=False,
        )
    )
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
