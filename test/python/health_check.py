#!/usr/bin/python3
"""Asks a uims server for its health over grpc.health.v1, from Python stubs made by scripts/gen-python.sh.

Usage: health_check.py --target HOST:PORT [--service NAME] [--stubs DIR] [--timeout SECONDS]

Prints the serving status and exits 0 when it is SERVING, 1 when the server answers with another
status, 2 when the call fails (e.g. NOT_FOUND for a service the server does not know), 3 when
the Python grpc packages or the stubs are missing.
"""

import argparse
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    parser = argparse.ArgumentParser(description="grpc.health.v1 Check against a uims server")
    parser.add_argument("--target", required=True, help="host:port of the server")
    parser.add_argument("--service", default="", help='service name, e.g. uims.broker.v1.BrokerService; "" for the whole server')
    parser.add_argument(
        "--stubs",
        default=os.path.join(REPO_ROOT, "build", "pygen"),
        help="directory made by scripts/gen-python.sh (default: build/pygen, made by `make pyclient`)",
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="deadline of the call in seconds")
    args = parser.parse_args()

    sys.path.insert(0, args.stubs)
    try:
        import grpc
    except ImportError:
        print("the Python grpc package is missing: apt-get install python3-grpcio python3-protobuf", file=sys.stderr)
        return 3
    try:
        from health.v1 import health_pb2, health_pb2_grpc
    except ImportError as err:
        print(f"no grpc.health.v1 stubs in {args.stubs} ({err}): run scripts/gen-python.sh {args.stubs}", file=sys.stderr)
        return 3

    with grpc.insecure_channel(args.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
        except grpc.RpcError as err:
            print(f"{err.code().name}: {err.details()}", file=sys.stderr)
            return 2
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(status)
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
