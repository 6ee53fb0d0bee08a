"""The `vigie` command: serve, demo, check-config."""

from __future__ import annotations

import argparse
import os
import logging
import sys

# aiohttp and the web side are imported in _serve, after the cameras have started: they
# connect during the ~0.4 s those imports take (a full wall sooner after a restart).
from ingest.redact import Redactor, install_log_redaction
from server.config import ConfigError, VigieConfig, load_config
from server.memory import install_snapshot_signal, limit_arenas

logger = logging.getLogger("vigie")

SHUTDOWN_TIMEOUT = 3.0  # seconds aiohttp waits for handlers; streams are closed before that


class _MalformedRequestFilter(logging.Filter):
    """aiohttp logs a full traceback at ERROR for every malformed HTTP request (already
    answered 400): one line at WARNING is enough, and a flood of them cannot fill the disk
    with tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        if record.exc_info and isinstance(record.exc_info[1], HttpProcessingError):
            record.msg = "malformed HTTP request refused: %s"
            record.args = (str(record.exc_info[1]).splitlines()[0][:200],)
            record.exc_info = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _setup_logging(level: str, redactor: Redactor) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("aiohttp.server").addFilter(_MalformedRequestFilter())
    install_log_redaction(redactor)


def _serve(config: VigieConfig, redactor: Redactor, banner: list[str]) -> int:
    limit_arenas()  # before the first worker thread starts
    install_snapshot_signal()
    from server.runtime import Runtime

    runtime = Runtime(config, redactor)
    runtime.start()  # cameras connect while the web side loads
    from aiohttp import web

    from server.app import create_app

    app = create_app(config, redactor, runtime=runtime)
    host, port = config.server.host, config.server.port

    def announce(_: str) -> None:
        for line in banner:
            print(line, flush=True)

    web.run_app(app, host=host, port=port, shutdown_timeout=SHUTDOWN_TIMEOUT,
                print=announce, access_log=None, handle_signals=True)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    redactor = Redactor()
    _setup_logging(args.log_level, redactor)
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(str(error), file=sys.stderr)
        return 2
    try:
        config = with_overrides(config, args)
    except ValueError as error:
        print(f"vigie serve: {error}", file=sys.stderr)
        return 2
    host, port = config.server.host, config.server.port
    banner = [f"Vigie serving {args.config} on http://{host}:{port}/"]
    if config.cluster is not None:
        banner.append(f"  cluster node {config.cluster.node} on {', '.join(config.cluster.nats)}")
    if config.rtsp.listen:
        scheme = "rtsps" if config.rtsp.tls else "rtsp"
        banner.append(f"  RTSP for other video systems: {scheme}://{config.rtsp.host}:{config.rtsp.port}/")
    return _serve(config, redactor, banner)


def with_overrides(config: VigieConfig, args: argparse.Namespace) -> VigieConfig:
    """The config with the command line's --port, --rtsp-port, --cluster and --node: several
    nodes on one machine read the same file. ValueError names a bad value."""
    from server.config import ClusterConfig

    update: dict = {}
    if getattr(args, "port", None):
        host = config.server.host
        update["server"] = config.server.model_copy(
            update={"listen": f"[{host}]:{args.port}" if ":" in host else f"{host}:{args.port}"})
    if getattr(args, "rtsp_port", None) and config.rtsp.listen:
        host = config.rtsp.host
        update["rtsp"] = config.rtsp.model_copy(
            update={"listen": f"[{host}]:{args.rtsp_port}" if ":" in host else f"{host}:{args.rtsp_port}"})
    if getattr(args, "cluster", None) or getattr(args, "node", None):
        if not args.node or (not args.cluster and config.cluster is None):
            raise ValueError("--cluster and --node go together (or --node alone with a cluster section)")
        try:
            if args.cluster:
                update["cluster"] = ClusterConfig(nats=[args.cluster], node=args.node)
            else:  # the file's cluster (NATS servers, TLS, credentials), this node's name
                update["cluster"] = ClusterConfig.model_validate(
                    {**config.cluster.model_dump(exclude_unset=True), "node": args.node},
                    context={"base_dir": os.path.dirname(config.source_path) or None})
        except Exception as error:  # noqa: BLE001 - pydantic's error, without the value
            raise ValueError(f"--cluster/--node: {str(error).splitlines()[-1].strip()}") from None
    return config.model_copy(update=update) if update else config


def cmd_demo(args: argparse.Namespace) -> int:
    from server.demo import DEMO_WALL_ID, demo_config, demo_users

    redactor = Redactor()
    _setup_logging(args.log_level, redactor)
    users = demo_users(args.password)
    rtsp_port, udp_first = args.rtsp_port, 8000
    if rtsp_port == 0:  # a free port, and a free pair for RTP over UDP
        rtsp_port, udp_first = free_tcp_port(args.host), free_udp_pair(args.host)
    config = demo_config(args.host, args.port, users, rtsp_port or None, udp_first)
    try:
        config = with_overrides(config, argparse.Namespace(cluster=args.cluster, node=args.node))
    except ValueError as error:
        print(f"vigie demo: {error}", file=sys.stderr)
        return 2
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
    base = f"http://{shown}:{args.port}"
    rtsp = [f"  RTSP (Digest, same users), one camera:           rtsp://{shown}:{rtsp_port}/cameras/st-martin-1",
            f"  RTSP, the wall:                                  rtsp://{shown}:{rtsp_port}/walls/{DEMO_WALL_ID}",
            ] if rtsp_port else []
    # The demo's passwords are printed on purpose (stdout, not the log): they are its keys.
    accounts = [f"    {name:<22} {role:<9} {password}" for name, (role, password, _) in users.items()]
    return _serve(config, redactor, [
        "Vigie demo: 9 synthetic cameras in 3 communes.",
        f"  Viewer (log in with a user below):               {base}/",
        f"  Live 3x3 wall (MJPEG, any browser, after login): {base}/walls/{DEMO_WALL_ID}/mjpeg",
        *rtsp,
        "  Users (name, role, password):",
        *accounts,
        "Press Ctrl+C to stop.",
    ])


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as error:
        print(str(error), file=sys.stderr)
        return 2
    print(f"{args.file}: OK ({len(config.communes)} communes, {len(config.cameras)} cameras, "
          f"{len(config.walls)} walls)")
    return 0


def free_tcp_port(host: str) -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def free_udp_pair(host: str) -> int:
    """An even port whose next is free too, for RTP and RTCP over UDP."""
    import socket

    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first:
            first.bind((host, 0))
            port = first.getsockname()[1]
            if port % 2 or port >= 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as second:
                try:
                    second.bind((host, port + 1))
                except OSError:
                    continue
                return port
    raise OSError("no free pair of UDP ports")


def cmd_hash_password(args: argparse.Namespace) -> int:
    """Read a password (prompt, or one line on standard input) and print its argon2 hash,
    or with --digest USER the stream_digest (Digest HA1 values) for RTSP."""
    import getpass

    from server.access.digest import ha1
    from server.access.secrets import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        print("a password needs at least 8 characters", file=sys.stderr)
        return 2
    if args.digest:
        user = args.digest
        print("stream_digest:")
        print(f"  md5: {ha1('MD5', user, password)}")
        print(f"  sha256: {ha1('SHA-256', user, password)}")
        return 0
    print(hash_password(password))
    return 0


def cmd_make_token(args: argparse.Namespace) -> int:
    """Print a new random token (give it to the kiosk or scraper) and the hash for the config."""
    from server.access.secrets import hash_token, new_token

    token = new_token()
    print(f"token:      {token}")
    print(f"token_hash: {hash_token(token)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vigie", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run against the cameras of a config file")
    serve.add_argument("--config", required=True, help="path of vigie.yaml")
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--port", type=int, help="web port (overrides server.listen's)")
    serve.add_argument("--rtsp-port", type=int, help="RTSP port (overrides rtsp.listen's)")
    serve.add_argument("--cluster", metavar="URL", help="NATS server of a cluster (nats://HOST:4222)")
    serve.add_argument("--node", help="this node's name in the cluster")
    serve.set_defaults(func=cmd_serve)
    demo = commands.add_parser("demo", help="run with 9 built-in synthetic cameras")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--password", help="one password for every demo user (default: random)")
    demo.add_argument("--rtsp-port", type=int, default=8554,
                      help="RTSP port (default 8554; 0 picks a free one)")
    demo.add_argument("--cluster", metavar="URL", help="NATS server of a cluster (nats://HOST:4222)")
    demo.add_argument("--node", help="this node's name in the cluster")
    demo.add_argument("--log-level", default="info")
    demo.set_defaults(func=cmd_demo)
    check = commands.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("file")
    check.set_defaults(func=cmd_check_config)
    hasher = commands.add_parser("hash-password", help="print the argon2 hash of a password")
    hasher.add_argument("--digest", metavar="USER",
                        help="print USER's stream_digest for RTSP (Digest HA1) instead")
    hasher.set_defaults(func=cmd_hash_password)
    token = commands.add_parser("make-token", help="make a kiosk or metrics token and its hash")
    token.set_defaults(func=cmd_make_token)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
