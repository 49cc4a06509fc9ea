"""submit_sm per second from the SMPP gateway to an SMSC on loopback.

The SMSC (tests/smsc.py, real SMPP 3.4 over TCP) runs in its own process and
answers every submit_sm at once; the gateway binds, keeps a window of submits in
flight and waits for every answer, as `jobs.sending.submit` does for a batch.

    .venv/bin/python bench/smpp_submit.py [--messages 5000] [--window 10]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.gateways.base import Outbound
from app.gateways.smpp import SmppGateway


def serve(port_out: multiprocessing.Queue, stop: multiprocessing.Event) -> None:
    from tests.smsc import SMSC

    smsc = SMSC()
    port_out.put(smsc.port)
    stop.wait()
    smsc.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    ports: multiprocessing.Queue = multiprocessing.Queue()
    stop = multiprocessing.Event()
    smsc = multiprocessing.Process(target=serve, args=(ports, stop))
    smsc.start()
    port = ports.get(timeout=10)
    gateway = SmppGateway({"SMPP_PORT": port, "SMPP_WINDOW": args.window})
    messages = [Outbound(i, f"+1415555{i % 10000:04d}", f"[Shop] Your code is {i:06d}",
                         "international") for i in range(args.messages)]
    start = time.perf_counter()
    accepted = 0
    for i in range(0, len(messages), args.batch):
        accepted += sum(r.accepted for r in gateway.submit(messages[i:i + args.batch]))
    elapsed = time.perf_counter() - start
    stop.set()
    smsc.join(timeout=10)
    print(f"| window {args.window}, batches of {args.batch} | {args.messages} | {accepted} | "
          f"{elapsed:.2f} | {accepted / elapsed:.0f} |")


if __name__ == "__main__":
    main()
